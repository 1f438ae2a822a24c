"""TCP proxy adding a fixed one-way delay in each direction (userspace stand-in for netem).

Used when the kernel has no `sch_netem` (as on the reference machine). Every chunk read on one side
is written to the other side `delay` seconds after it arrived, so request/response round trips
cost 2 × delay while pipelined data keeps flowing (no bandwidth-delay window effects: TCP on
loopback acknowledges instantly). Usage: delayproxy.py DELAY_MS LISTEN_PORT:TARGET_PORT ...
(all on 127.0.0.1). Prints "ready" when listening.
"""

import asyncio
import sys


async def pipe(reader, writer, delay):
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def read_side():
        try:
            while True:
                data = await reader.read(1 << 16)
                await queue.put((loop.time() + delay, data))
                if not data:
                    return
        except (ConnectionError, OSError):
            await queue.put((loop.time(), b""))

    async def write_side():
        try:
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            return

    await asyncio.gather(read_side(), write_side())


async def handle(client_reader, client_writer, target, delay):
    try:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pipe(client_reader, up_writer, delay), pipe(up_reader, client_writer, delay))
    for w in (client_writer, up_writer):
        w.close()


async def main():
    delay = float(sys.argv[1]) / 1000
    servers = []
    for spec in sys.argv[2:]:
        listen, target = (int(p) for p in spec.split(":"))
        servers.append(await asyncio.start_server(
            lambda r, w, t=target: handle(r, w, t, delay), "127.0.0.1", listen, backlog=1024))
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    asyncio.run(main())
