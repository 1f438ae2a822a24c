"""nginx configuration: the hub's routes and headers served statically, plus throttling proxies.

Layout (one nginx instance per network namespace, all ports on `bind`):
- `h1` (+ `h1cdn`): plain HTTP/1.1 origin. API JSON from `docroot/api/...`, `/resolve/` answers
  with the fake hub's exact headers (per-file `map`s), LFS files as a 302 to the CDN port of the same
  pair, regular files as a 200 with their content; `/cdn/<oid>` serves bytes (ranges, sendfile).
- `tls` (+ `tlscdn`): the same over TLS with ALPN h2 (HTTP/2) and http/1.1.
- stream proxies (`ngx_stream_module`): one hub/CDN port pair per throttle profile, each TCP
  connection proxied to the `h1` origin with `proxy_download_rate` (per connection, unlike http
  `limit_rate` which is per request and lets short ranges escape).
"""

import os

STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"

# name -> proxy_download_rate value (nginx syntax); "$uneven_rate" is a map on $connection.
THROTTLES = {"t5": "5m", "t20": "20m", "uneven": "$uneven_rate"}


# delayed listener -> the listener it forwards to (through delayproxy.py, not nginx); `dt5` is the
# 5 MB/s throttle 50 ms away, as a mirror far from its users; `duneven` the uneven one
DELAYED = {"dh1": "h1", "dtls": "tls", "dt5": "t5", "duneven": "uneven"}


def ports(base):
    """Port numbers of every listener, from `base`."""
    names = ["h1", "h1cdn", "tls", "tlscdn"]
    for t in THROTTLES.keys() | DELAYED.keys():
        names += [t, t + "cdn"]
    return {n: base + i for i, n in enumerate(names)}


def _q(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_maps(meta, path):
    """Per-file maps keyed by `<type>|<repo>|<decoded path>` (type empty for models)."""
    maps = {"f_blob": [], "f_lfs": [], "f_commit": [], "f_etag": [], "f_letag": [], "f_lsize": [],
            "f_loc": [], "f_cetag": []}
    for r in meta["repos"].values():
        rt = "" if r["type"] == "models" else r["type"]
        for f in r["files"]:
            key = _q(f"{rt}|{r['repo']}|{f['path']}")
            h = f["headers"]
            maps["f_blob"].append(f"{key} {f['blob']};")
            if f["lfs"]:
                maps["f_lfs"].append(f"{key} 1;")
            for var, name in (("f_commit", "x-repo-commit"), ("f_etag", "etag"),
                              ("f_letag", "x-linked-etag"), ("f_lsize", "x-linked-size"),
                              ("f_loc", "location")):
                if name in h:
                    maps[var].append(f"{key} {_q(h[name])};")
            if "etag" in f.get("cache_headers", {}):
                maps["f_cetag"].append(f"{key} {_q(f['cache_headers']['etag'])};")
    with open(path, "w") as out:
        for var, lines in maps.items():
            out.write(f'map "$rt|$rr|$rp" ${var} {{\n  default "";\n')
            out.write("\n".join("  " + line for line in lines))
            out.write("\n}\n")


def write_conf(work, name, bind, base_port, docroot, maps_path, cert, key, workers=2):
    """Writes `work/<name>/nginx.conf`; returns (conf path, ports, log dir)."""
    d = os.path.join(work, name)
    logs = os.path.join(d, "logs")
    os.makedirs(logs, exist_ok=True)
    os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
    p = ports(base_port)
    cdn_hosts = [("h1", "h1cdn", "http"), ("tls", "tlscdn", "https")]
    cdn_hosts += [(t, t + "cdn", "http") for t in THROTTLES]
    cdn_hosts += [("dh1", "dh1cdn", "http"), ("dtls", "dtlscdn", "https"), ("dt5", "dt5cdn", "http"),
                  ("duneven", "dunevencdn", "http")]
    host_map = "\n".join(f'    "{bind}:{p[a]}" "{s}://{bind}:{p[b]}";' for a, b, s in cdn_hosts)
    listens = f"    listen {bind}:{p['h1']}; listen {bind}:{p['h1cdn']};"
    streams = "\n".join(
        f"""  server {{ listen {bind}:{p[t + sfx]}; proxy_pass {bind}:{p['h1']};
           proxy_download_rate {rate}; }}"""
        for t, rate in THROTTLES.items() for sfx in ("", "cdn")
    )
    tmp = os.path.join(d, "tmp")
    conf = f"""
load_module {STREAM_MODULE};
worker_processes {workers};
pid {d}/nginx.pid;
error_log {logs}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  log_format hfd '$server_port $connection $connection_requests $request_method $status '
                 '$body_bytes_sent $http_range "$request_uri"';
  access_log {logs}/access.log hfd;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy; fastcgi_temp_path {tmp}/fcgi;
  uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_requests 1000000; keepalive_timeout 120s;
  http2_max_concurrent_streams 128;
  default_type application/octet-stream;
  map_hash_max_size 262144; map_hash_bucket_size 512;
  include {maps_path};
  map $http_host $cdn_base {{
    default "";
{host_map}
  }}
  ssl_certificate {cert}; ssl_certificate_key {key};
  ssl_protocols TLSv1.2 TLSv1.3;
  server {{
{listens}
    listen {bind}:{p['tls']} ssl http2; listen {bind}:{p['tlscdn']} ssl http2;
    root {docroot};
    absolute_redirect off;
    location ~ "^/api/(?<at>models|datasets)/(?<ar>fake/[^/]+)(?:/revision/[^/]+)?$" {{
      default_type application/json;
      try_files /api/$at/$ar/info.json =404;
    }}
    location ~ "^/api/(?<at>models|datasets)/(?<ar>fake/[^/]+)/tree/[^/]+/?$" {{
      default_type application/json;
      try_files /api/$at/$ar/tree.json =404;
    }}
    location ~ "^/(?:(?<rt>datasets)/)?(?<rr>fake/[^/]+)/resolve/[^/]+/(?<rp>.+)$" {{
      etag off;
      add_header X-Repo-Commit $f_commit always;
      add_header ETag $f_etag;
      add_header X-Linked-Etag $f_letag;
      add_header X-Linked-Size $f_lsize;
      if ($f_blob = "") {{ return 404; }}
      if ($f_lfs) {{ return 302 $cdn_base/cdn/$f_blob; }}
      return 307 $f_loc;
    }}
    # public regular files: the hub's 307 target serves the bytes with the git oid as ETag
    location ~ "^/api/resolve-cache/(?:models|(?<rt>datasets))/(?<rr>fake/[^/]+)/[0-9a-f]{{40}}/(?<rp>.+)$" {{
      etag off;
      add_header X-Repo-Commit $f_commit always;
      add_header ETag $f_cetag;
      if ($f_blob = "") {{ return 404; }}
      try_files /cdn/$f_blob =404;
    }}
    location /cdn/ {{ }}
  }}
}}
stream {{
  log_format s '$server_port $connection $bytes_sent $session_time $msec';
  access_log {logs}/stream.log s;
  # one connection in four at 0.5 MB/s, the rest at 10 MB/s ($connection is a per-worker serial)
  map $connection $uneven_rate {{
    "~[02468][048]$" 512k;
    "~[13579][26]$" 512k;
    "~^[048]$" 512k;
    default 10m;
  }}
{streams}
}}
"""
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return path, p, logs
