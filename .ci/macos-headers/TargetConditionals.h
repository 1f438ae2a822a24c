/* The one macOS SDK header ring's C code needs (include/ring-core/base.h),
 * for `cargo check`/`cargo clippy --target *-apple-darwin` on Linux. The C
 * objects built with it are never linked: checking stops before linking.
 * Values are those of the macOS SDK for a Mac target. */
#define TARGET_OS_MAC 1
#define TARGET_OS_OSX 1
#define TARGET_OS_IPHONE 0
