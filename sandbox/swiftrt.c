/* SwiftPM links every executable through swiftc, which adds the Swift
 * runtime's image-registration object (swiftrt.o) and the runtime library.
 * The two references below are all that tie this C launcher to the Swift
 * runtime: it holds no Swift code and no metadata to register. These no-ops
 * satisfy them, and with the runtime linked statically (Package.swift) no
 * object of it is pulled in, so a cold run no longer loads libswiftCore at
 * start (BENCHMARKS.md, issue 12). Should a toolchain's swiftrt.o need more,
 * the link pulls that from the static runtime and nothing breaks. */
void swift_addNewDSOImage(const void *image) { (void)image; }
int _swift_backtrace_isThunkFunction(const char *name) { (void)name; return 0; }
