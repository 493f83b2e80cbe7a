#pragma once
/// \file atomic_file.h  Whole files: read in one call, and replaced atomically (write to a temporary
/// name beside the target, flush it to disk, rename it onto the target).

#include <functional>
#include <string>

namespace siamese {

/// The whole contents of the file `path`. Throws siamese::Error naming it: NotFound ("no such
/// file") when it does not exist, IOError when it is a folder or cannot be read.
std::string read_file(const std::string& path);

/// Writes the file `path` so that a crash or a failure never leaves it half-written: calls
/// write(temporary) for the temporary file PATH.tmp.PID beside it (PID: this process), fsyncs that
/// file, renames it onto `path` and fsyncs the folder. On any failure the temporary file is
/// removed, `path` is left as it was, and a siamese::Error naming `path` propagates (IOError for a
/// LibTorch or filesystem failure; a siamese::Error `write` throws keeps its category).
/// - A symbolic link is followed to the file it finally names (which need not exist yet): that file
///   is replaced, the link stays a link.
/// - A target that exists and is neither a regular file nor a folder (a device, a FIFO) is written
///   in place, not replaced: `write` fills a temporary file in the system temporary folder, whose
///   bytes then go to the target with every write checked (so /dev/full gives an IOError, "No
///   space left on device"). A folder gives an IOError.
/// - Temporary files of this target that a killed writer left behind (named exactly
///   PATH.tmp.DIGITS, DIGITS the pid of no running process: kill(pid, 0) fails with ESRCH) are
///   removed first. A pid is only meaningful on this machine: two machines (or pid namespaces)
///   writing one shared folder may each see the other's temporary files as stale.
/// Thread safety: writes of different targets may run concurrently. Two processes replacing one
/// target each write it whole, the last rename wins; to apply changes one after another, callers
/// lock (EmbeddingIndex::update does). Two threads of one process must not write one target at once
/// (they would share the temporary name).
void write_atomically(const std::string& path, const std::function<void(const std::string&)>& write);

/// write_atomically of these bytes, written with POSIX write() (every return value checked): a full
/// disk gives one siamese::Error(IOError) naming `path` ("cannot write (No space left on device)").
void write_file_atomically(const std::string& path, const std::string& bytes);

/// write_file_atomically for a text file.
void write_text_atomically(const std::string& path, const std::string& text);

}  // namespace siamese
