import Basics
import CodeDomain
import Foundation
import Testing
import TestSupport

/// Reports, models and rollouts are written whole or not at all (docs/faults.md).
@Suite struct AtomicFileTests {
    @Test func replacesTheFileAndLeavesNoTemporaryFile() throws {
        let dir = try tempDirectory("atomic")
        let file = dir.appendingPathComponent("report.json")
        try AtomicFile.write(Data("old".utf8), to: file)
        try AtomicFile.write(Data("new".utf8), to: file)
        #expect(try String(contentsOf: file, encoding: .utf8) == "new")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["report.json"])
        // Created like any file the user writes: 0666 less the umask, not mkstemp's 0600.
        let mode = try FileManager.default.attributesOfItem(atPath: file.path)[.posixPermissions] as? Int ?? 0
        #expect(mode & 0o044 == 0o044)
    }

    @Test func createsMissingFolders() throws {
        let file = try tempDirectory("atomic").appendingPathComponent("a/b/model.qvm")
        try AtomicFile.write(Data("x".utf8), to: file)
        #expect(FileManager.default.fileExists(atPath: file.path))
    }

    @Test func aPathThroughAFileOrOntoAFolderIsAClearErrorThatLeavesNothing() throws {
        let dir = try tempDirectory("atomic")
        try "keep".write(to: dir.appendingPathComponent("afile"), atomically: false, encoding: .utf8)
        let through = dir.appendingPathComponent("afile/report.json")
        #expect(throws: FileWriteError(path: through.path, code: ENOTDIR)) { try AtomicFile.write(Data("x".utf8), to: through) }
        #expect(throws: FileWriteError(path: through.path, code: ENOTDIR)) { try AtomicFile.checkWritable(through) }
        let folder = dir.appendingPathComponent("sub")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        #expect(throws: FileWriteError(path: folder.path, code: EISDIR)) { try AtomicFile.write(Data("x".utf8), to: folder) }
        #expect(throws: FileWriteError(path: folder.path, code: EISDIR)) { try AtomicFile.checkWritable(folder) }
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: dir.path)) == ["afile", "sub"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).isEmpty)
        #expect(FileWriteError(path: "/r.json", code: ENOSPC).description
                == "cannot write /r.json: No space left on device; the disk is full: free some space, or choose another path")
    }
}

@Suite struct RolloutAppendTests {
    @Test func appendsAfterATornLineAndCreatesTheFile() throws {
        let path = try tempDirectory("rollouts").appendingPathComponent("new/r.jsonl").path
        try RolloutFile.prepare(path)
        #expect(FileManager.default.contents(atPath: path) == Data())
        try RolloutFile.append([], to: path)
        #expect(FileManager.default.contents(atPath: path) == Data())
        try RolloutFile.append([RolloutRecord(taskId: "1", sample: 0, lines: ["x = 1"], reward: 1)], to: path)
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data(#"{"task_id": "2", "sam"#.utf8))  // an interrupted run
        try handle.close()
        try RolloutFile.append([RolloutRecord(taskId: "3", sample: 0, lines: ["y = 2"], reward: 0)], to: path)
        #expect(try RolloutFile.load(path).map(\.taskId) == ["1", "3"])
    }

    @Test func anUnwritablePathNamesTheFileAndTheReason() throws {
        let dir = try tempDirectory("rollouts")
        try "".write(to: dir.appendingPathComponent("afile"), atomically: false, encoding: .utf8)
        let path = dir.appendingPathComponent("afile/r.jsonl").path
        #expect(throws: RolloutError.unwritable(path, "Not a directory")) { try RolloutFile.prepare(path) }
        #expect(throws: RolloutError.unwritable(path, "Not a directory")) {
            try RolloutFile.append([RolloutRecord(taskId: "1", sample: 0, lines: [], reward: 0)], to: path)
        }
    }
}
