/* ProcessPrng, the one export of bcryptprimitives.dll that Rust's std
 * imports on Windows (for random HashMap keys). Windows 10 and later ship
 * the DLL; wine added it after 8.0 (Debian 12's), so .ci/windows installs
 * this stand-in into older wine prefixes. It draws from RtlGenRandom
 * (advapi32's SystemFunction036), which wine implements. */
#include <windows.h>
#include <ntsecapi.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!RtlGenRandom(data, n)) {
            return FALSE;
        }
        data += n;
        len -= n;
    }
    return TRUE;
}
