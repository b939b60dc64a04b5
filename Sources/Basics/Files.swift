import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A file qcode could not write: which one, the system's reason, and what to
/// do. Foundation's own errors read "The operation could not be completed.
/// (NSCocoaErrorDomain error 512.)", which tells a user nothing.
public struct FileWriteError: Error, Sendable, Equatable, CustomStringConvertible {
    public let path: String
    /// The errno of the call that failed.
    public let code: Int32

    public init(path: String, code: Int32) {
        self.path = path
        self.code = code
    }

    public var reason: String { String(cString: strerror(code)) }

    public var description: String {
        "cannot write \(path): \(reason); \(advice)"
    }

    var advice: String {
        switch code {
        case ENOSPC, EDQUOT: return "the disk is full: free some space, or choose another path"
        case EFBIG: return "the file is larger than this process may write (`ulimit -f`): raise the limit, or choose another path"
        case EACCES, EPERM: return "check the permissions of its folder, or choose another path"
        case EROFS: return "its file system is read-only: choose another path"
        case ENOTDIR, ENOENT: return "a part of the path is not a folder: choose another path"
        case EISDIR: return "it is a folder: give a file name"
        default: return "check that its folder is writable and the disk has room, or choose another path"
        }
    }
}

/// Reports, QVM model files and test scripts are written whole or not at all:
/// the bytes go to a temporary file in the same folder, are flushed to disk,
/// and the file is renamed over the old one, so a crash, a full disk or a kill
/// leaves either the old file or the new one, never half of one, and no
/// temporary file behind. (qcode never writes its configuration; rollouts are
/// appended instead, see `RolloutFile.append`.)
public enum AtomicFile {
    /// Writes all of `data` at `offset` (or the file position), retrying short
    /// writes and EINTR, then flushes it to disk; the errno of a failure, else nil.
    public static func writeFully(_ fd: Int32, _ data: Data, at offset: off_t? = nil) -> Int32? {
        data.withUnsafeBytes { raw -> Int32? in
            var off = 0
            while off < raw.count {
                let n = offset.map { pwrite(fd, raw.baseAddress! + off, raw.count - off, $0 + off_t(off)) }
                    ?? Glibc.write(fd, raw.baseAddress! + off, raw.count - off)
                if n < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                off += n
            }
            return fsync(fd) == 0 ? nil : errno
        }
    }

    public static func write(_ data: Data, to url: URL) throws(FileWriteError) {
        let path = url.path
        let folder = url.deletingLastPathComponent().path
        if let e = makeFolders(folder) { throw FileWriteError(path: path, code: e) }
        let (fd, temp) = try openTemporary(in: folder, for: url.lastPathComponent, path: path)
        var renamed = false
        defer { if !renamed { unlink(temp) } }
        if let failure = writeFully(fd, data) {
            close(fd)
            throw FileWriteError(path: path, code: failure)
        }
        guard close(fd) == 0 else { throw FileWriteError(path: path, code: errno) }
        guard rename(temp, path) == 0 else { throw FileWriteError(path: path, code: errno) }
        renamed = true
        // The rename itself must survive a power cut too (best effort: some file systems refuse).
        let dir = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dir >= 0 {
            _ = fsync(dir)
            close(dir)
        }
    }

    /// Fails the way `write` would, before the work whose result is to be
    /// written: a benchmark or a training run learns at its start, not an hour
    /// later, that its `--out` cannot be written. Leaves nothing behind.
    public static func checkWritable(_ url: URL) throws(FileWriteError) {
        let path = url.path
        var st = stat()
        if stat(path, &st) == 0, st.st_mode & S_IFMT == S_IFDIR { throw FileWriteError(path: path, code: EISDIR) }
        let folder = url.deletingLastPathComponent().path
        if let e = makeFolders(folder) { throw FileWriteError(path: path, code: e) }
        let (fd, temp) = try openTemporary(in: folder, for: url.lastPathComponent, path: path)
        close(fd)
        unlink(temp)
    }

    /// A new file `.NAME.tmp-RANDOM` beside the target. Created with 0666 so
    /// the umask applies, as for any file the user writes.
    static func openTemporary(in folder: String, for name: String, path: String) throws(FileWriteError) -> (Int32, String) {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<16 {
            let temp = folder + "/." + name + ".tmp-" + String(generator.next() as UInt64, radix: 36)
            let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
            if fd >= 0 { return (fd, temp) }
            if errno != EEXIST { throw FileWriteError(path: path, code: errno) }
        }
        throw FileWriteError(path: path, code: EEXIST)
    }

    /// `mkdir -p`: nil when `path` is (now) a folder, else the errno that stopped it.
    public static func makeFolders(_ path: String) -> Int32? {
        if path.isEmpty || path == "/" { return nil }
        var st = stat()
        if stat(path, &st) == 0 { return st.st_mode & S_IFMT == S_IFDIR ? nil : ENOTDIR }
        if errno != ENOENT { return errno }
        if let e = makeFolders(URL(fileURLWithPath: path).deletingLastPathComponent().path) { return e }
        if mkdir(path, 0o777) == 0 || errno == EEXIST { return nil }
        return errno
    }
}
