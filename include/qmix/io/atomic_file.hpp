// SPDX-License-Identifier: MIT
#pragma once

// Output files written all or nothing (POSIX).
//
// An atomic_file streams into a temporary file beside its destination (same folder, so the
// final rename cannot cross file systems); only commit() flushes it to disk and renames it
// into place. Until then the destination is untouched: a failure, an exception passing
// through the caller or the destructor removes the temporary file, and so does a termination
// signal once the program has called remove_temporaries_on_termination_signals().
// commit_together() commits several files so that either all of them or none replace their
// destinations.
//
// What may be replaced: a missing file or a regular file. A destination that is a FIFO, a
// device, a socket or a folder is refused before anything is created. A symbolic link is
// written through: the file it points to is replaced (and must be a regular file or
// missing, in an existing folder), the link itself stays.
//
// Temporary names: `.BASE.qmix-PID-XXXXXX` beside the destination, BASE cut (at a UTF-8
// character boundary) so that the name fits the folder's NAME_MAX. The owner holds an
// exclusive flock() on its temporary while it lives. A later atomic_file for the same
// destination removes the temporaries left by processes that died without cleaning up
// (SIGKILL, power loss): those of its own user whose PID no longer runs and whose lock
// nobody holds.

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "qmix/core/error.hpp"
#include "qmix/io/direct_stream.hpp"
#include "qmix/io/signal_cleanup.hpp"

namespace qmix::io {

namespace detail {

inline std::string system_error_text(int code) {
    return std::strerror(code);
}

/// The process umask, read without changing it (umask() can only be read by setting it,
/// which would race with other threads creating files).
inline mode_t current_umask() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("Umask:", 0) == 0) {
            return static_cast<mode_t>(std::stoul(line.substr(6), nullptr, 8));
        }
    }
    return 022;
}

/// `path` split into its folder (empty, or ending in '/') and its last component.
struct path_parts {
    std::string folder;
    std::string base;
};

inline path_parts split_path(const std::string& path) {
    const std::size_t slash = path.rfind('/');
    if (slash == std::string::npos) return {std::string(), path};
    return {path.substr(0, slash + 1), path.substr(slash + 1)};
}

inline std::string folder_or_dot(const std::string& folder) {
    return folder.empty() ? std::string(".") : folder;
}

/// The longest file name the folder's file system accepts.
inline std::size_t name_max(const std::string& folder) {
    errno = 0;
    const long value = ::pathconf(folder_or_dot(folder).c_str(), _PC_NAME_MAX);
    return value > 0 ? static_cast<std::size_t>(value) : std::size_t(NAME_MAX);
}

/// Bytes a temporary name adds to the (cut) base name: "." + ".qmix-" + PID (at most 10
/// digits, so that the cut does not depend on the PID) + "-" + "XXXXXX" + ".old" (the
/// suffix of the backup link commit_together() makes).
inline constexpr std::size_t temporary_name_overhead = 1 + 6 + 10 + 1 + 6 + 4;
inline constexpr const char* backup_suffix = ".old";

/// The part of every temporary name for destination base name `base` that precedes the PID:
/// "." + base, cut to fit, + ".qmix-". The cut never splits a UTF-8 sequence.
inline std::string temporary_prefix(const std::string& base, std::size_t name_max) {
    std::size_t keep = base.size();
    const std::size_t room =
        name_max > temporary_name_overhead ? name_max - temporary_name_overhead : 1;
    if (keep > room) {
        keep = room;
        while (keep > 1 && (static_cast<unsigned char>(base[keep]) & 0xc0) == 0x80) --keep;
    }
    return "." + base.substr(0, keep) + ".qmix-";
}

/// The PID in a temporary name `prefix` + PID + "-" + 6 characters (+ ".old" for a backup
/// link), or -1 when `name` is not such a name.
inline long temporary_owner(const std::string& name, const std::string& prefix) {
    std::size_t size = name.size();
    const std::size_t suffix = std::strlen(backup_suffix);
    if (size > suffix && name.compare(size - suffix, suffix, backup_suffix) == 0) size -= suffix;
    if (size < prefix.size() + 1 + 1 + 6 || name.compare(0, prefix.size(), prefix) != 0) {
        return -1;
    }
    const std::size_t digits_end = size - 7;
    if (name[digits_end] != '-' || digits_end == prefix.size() || digits_end - prefix.size() > 10) {
        return -1;
    }
    long pid = 0;
    for (std::size_t i = prefix.size(); i < digits_end; ++i) {
        if (name[i] < '0' || name[i] > '9') return -1;
        pid = pid * 10 + (name[i] - '0');
    }
    return pid > 0 && pid <= INT_MAX ? pid : -1;
}

/// Whether no process with this PID runs (as far as this PID namespace can tell).
inline bool process_is_gone(long pid) {
    return ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

/// Removes the temporaries named `prefix` + PID + "-XXXXXX" in `folder` that a dead process
/// of this user left behind. Best effort: anything in doubt stays.
inline std::size_t remove_stale_temporaries(const std::string& folder, const std::string& prefix) {
    DIR* dir = ::opendir(folder_or_dot(folder).c_str());
    if (dir == nullptr) return 0;
    std::vector<std::string> stale;
    const long own = static_cast<long>(::getpid());
    while (const dirent* entry = ::readdir(dir)) {
        const std::string name = entry->d_name;
        const long pid = temporary_owner(name, prefix);
        if (pid > 0 && pid != own && process_is_gone(pid)) stale.push_back(name);
    }
    ::closedir(dir);
    std::size_t removed = 0;
    for (const std::string& name : stale) {
        const std::string path = folder + name;
        const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) continue;
        struct stat opened {};
        struct stat named {};
        // Ours to remove: a regular file of this user that no living process holds locked,
        // still the file the name points to.
        if (::fstat(fd, &opened) == 0 && S_ISREG(opened.st_mode) && opened.st_uid == ::geteuid() &&
            ::flock(fd, LOCK_EX | LOCK_NB) == 0 && ::lstat(path.c_str(), &named) == 0 &&
            named.st_dev == opened.st_dev && named.st_ino == opened.st_ino &&
            ::unlink(path.c_str()) == 0) {
            ++removed;
        }
        ::close(fd);
    }
    return removed;
}

}  // namespace detail

/// The file an output path really names: the path itself, or for a symbolic link the file
/// it points to (resolved to a canonical path). Throws when the path cannot be an output:
/// an existing file that is not a regular file (FIFO, device, socket, folder), a link to
/// one, a link whose target is missing, an empty or "." / ".." base name.
inline std::string resolve_output_path(const std::string& path) {
    const detail::path_parts parts = detail::split_path(path);
    if (parts.base.empty() || parts.base == "." || parts.base == "..") {
        throw error(path + ": not a file name to write to");
    }
    struct stat link {};
    if (::lstat(path.c_str(), &link) != 0) {
        return path;  // missing (or unreachable: creating the temporary reports why)
    }
    std::string target = path;
    if (S_ISLNK(link.st_mode)) {
        char* resolved = ::realpath(path.c_str(), nullptr);
        if (resolved == nullptr) {
            const int code = errno;
            throw error(path + ": a symbolic link whose target cannot be written (" +
                        detail::system_error_text(code) + ")");
        }
        target = resolved;
        std::free(resolved);
    }
    struct stat status {};
    if (::stat(target.c_str(), &status) != 0) {
        const int code = errno;
        throw error(path + ": " + detail::system_error_text(code));
    }
    if (S_ISDIR(status.st_mode)) throw error(path + " is a folder, not a file path");
    if (!S_ISREG(status.st_mode)) {
        const char* kind = S_ISFIFO(status.st_mode)   ? "a FIFO"
                           : S_ISCHR(status.st_mode)  ? "a character device"
                           : S_ISBLK(status.st_mode)  ? "a block device"
                           : S_ISSOCK(status.st_mode) ? "a socket"
                                                      : "not a regular file";
        throw error(path + " is " + kind +
                    "; only a regular file or a missing one can be replaced");
    }
    return target;
}

/// A canonical form of a path that may not exist yet: the folder resolved to an absolute
/// path without links, a final symbolic link followed. Best effort: a part that cannot be
/// resolved is kept as given.
inline std::string canonical_path(const std::string& path) {
    struct stat link {};
    if (::lstat(path.c_str(), &link) == 0 && S_ISLNK(link.st_mode)) {
        if (char* resolved = ::realpath(path.c_str(), nullptr)) {
            std::string text = resolved;
            std::free(resolved);
            return text;
        }
        return path;
    }
    const detail::path_parts parts = detail::split_path(path);
    char* folder = ::realpath(detail::folder_or_dot(parts.folder).c_str(), nullptr);
    if (folder == nullptr) return path;
    std::string text = folder;
    std::free(folder);
    return (text == "/" ? text : text + "/") + parts.base;
}

/// Whether two paths name one file: the same inode when both exist (hard links, symbolic
/// links, "./a/../b" spellings), else the same canonical path, so that two names of a file
/// not created yet are caught too.
inline bool same_file(const std::string& a, const std::string& b) {
    struct stat first {};
    struct stat second {};
    const bool a_exists = ::stat(a.c_str(), &first) == 0;
    const bool b_exists = ::stat(b.c_str(), &second) == 0;
    if (a_exists && b_exists) return first.st_dev == second.st_dev && first.st_ino == second.st_ino;
    if (a_exists != b_exists) return false;
    return canonical_path(a) == canonical_path(b);
}

/// A file streamed to a temporary beside its destination and renamed over it on commit().
///
///     io::atomic_file out("report.json");
///     out.write(text.data(), text.size());
///     out.commit();
///
/// Writes are gathered in a buffer of buffer_size bytes. A file that outgrows it goes on
/// around the page cache where the file system allows (detail::direct_stream: O_DIRECT from
/// a background thread, two buffers of 4 MiB); small files never leave the buffer before
/// commit().
class atomic_file {
  public:
    explicit atomic_file(std::string destination, std::size_t buffer_size = std::size_t(1) << 20)
        : destination_(std::move(destination)), target_(resolve_output_path(destination_)) {
        const detail::path_parts parts = detail::split_path(target_);
        const std::size_t name_max = detail::name_max(parts.folder);
        if (parts.base.size() > name_max) {
            throw error(destination_ + ": the file name is " + std::to_string(parts.base.size()) +
                        " bytes long; this file system allows " + std::to_string(name_max));
        }
        buffer_.reserve(buffer_size > 0 ? buffer_size : 1);  // before there is a file to leak
        const std::string prefix = detail::temporary_prefix(parts.base, name_max);
        temporary_ = parts.folder + prefix + std::to_string(::getpid()) + "-XXXXXX";
        {
            // A termination signal between mkstemp and the registration would leave the file.
            termination_signals_blocked blocked;
            fd_ = ::mkstemp(temporary_.data());
            if (fd_ < 0) {
                const int code = errno;
                throw error(destination_ + ": cannot create a temporary file in '" +
                            detail::folder_or_dot(parts.folder) +
                            "': " + detail::system_error_text(code));
            }
            cleanup_slot_ = register_temporary(temporary_.c_str());
        }
        ::fcntl(fd_, F_SETFD, FD_CLOEXEC);
        temporary_exists_ = true;
        // The lock tells later runs that this temporary is alive; it goes with the process.
        ::flock(fd_, LOCK_EX | LOCK_NB);
        detail::remove_stale_temporaries(parts.folder, prefix);
    }

    atomic_file(const atomic_file&) = delete;
    atomic_file& operator=(const atomic_file&) = delete;
    ~atomic_file() { discard(); }

    /// The path as given.
    const std::string& destination() const noexcept { return destination_; }
    /// The path that commit() replaces: the destination, or the file its link points to.
    const std::string& target() const noexcept { return target_; }
    /// The temporary file's path, stable for the object's lifetime. It no longer exists
    /// after commit() or discard().
    const char* temporary_path() const noexcept { return temporary_.c_str(); }
    std::uint64_t bytes_written() const noexcept { return written_; }
    bool committed() const noexcept { return state_ == state::committed; }
    bool open() const noexcept { return state_ == state::writing || state_ == state::prepared; }

    void write(const void* data, std::size_t size) {
        expect(state::writing, "write");
        const auto* bytes = static_cast<const std::uint8_t*>(data);
        written_ += size;
        if (direct_) {
            if (const int code = direct_->write(bytes, size)) fail_code("writing failed", code);
            return;
        }
        if (buffer_.size() + size <= buffer_.capacity()) {
            buffer_.insert(buffer_.end(), bytes, bytes + size);
            return;
        }
        if (file_offset_ == 0 && (direct_ = detail::direct_stream::open(fd_))) {
            // The file outgrows its buffer: from here on around the page cache.
            int code = direct_->write(buffer_.data(), buffer_.size());
            buffer_.clear();
            if (code == 0) code = direct_->write(bytes, size);
            if (code != 0) fail_code("writing failed", code);
            return;
        }
        flush();
        if (size >= buffer_.capacity()) {
            write_all(bytes, size);  // large chunks skip the copy
        } else {
            buffer_.insert(buffer_.end(), bytes, bytes + size);
        }
    }

    void write(const std::string& text) { write(text.data(), text.size()); }

    /// Flushes the file to disk and renames it over the destination. Without this call
    /// nothing reaches the destination.
    void commit() {
        prepare();
        publish();
        finish();
    }

    /// Abandons the file: the temporary goes, the destination stays as it was.
    void discard() noexcept {
        direct_.reset();  // waits for the block in flight
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
        if (temporary_exists_) ::unlink(temporary_.c_str());
        temporary_exists_ = false;
        unregister_temporary(cleanup_slot_);
        cleanup_slot_ = -1;
        if (state_ != state::committed) state_ = state::failed;
    }

    /// Removes the temporary and throws qmix::error("DESTINATION: what"): every failure
    /// leaves the destination as it was and no temporary file behind.
    [[noreturn]] void fail(const std::string& what) {
        discard();
        throw error(destination_ + ": " + what);
    }

    // The two halves of commit(), for commit_together(): prepare() does everything that can
    // fail for reasons of the data (writing, the mode, the flush to disk); publish() only
    // renames.

    void prepare() {
        expect(state::writing, "commit");
        flush();
        // mkstemp creates the file private (0600); give it the mode a plainly created file
        // would have, or keep that of the file being replaced.
        struct stat existing;
        const mode_t mode = ::stat(target_.c_str(), &existing) == 0
                                ? (existing.st_mode & 07777)
                                : (0666 & ~detail::current_umask());
        ::fchmod(fd_, mode);
        if (::fsync(fd_) != 0) fail_errno("flushing the temporary file to disk failed");
        state_ = state::prepared;
    }

    /// Renames the prepared temporary over the target; checks first that the target is
    /// still something that may be replaced.
    void publish() {
        expect(state::prepared, "publish");
        struct stat status {};
        if (::lstat(target_.c_str(), &status) == 0 && !S_ISREG(status.st_mode)) {
            fail(target_ + " is no longer a regular file; it was left as it is");
        }
        if (::rename(temporary_.c_str(), target_.c_str()) != 0) {
            fail_errno("renaming the temporary file over the destination failed");
        }
        temporary_exists_ = false;
        state_ = state::committed;
    }

    /// After publish(): closes the file (releasing its lock), forgets the temporary and makes
    /// the rename itself durable (best effort: the file is already in place).
    void finish() noexcept {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
        unregister_temporary(cleanup_slot_);
        cleanup_slot_ = -1;
        sync_folder();
    }

  private:
    enum class state { writing, prepared, committed, failed };

    void expect(state wanted, const char* call) {
        if (state_ == wanted) return;
        if (state_ == state::committed || state_ == state::failed) {
            throw error(destination_ + ": " + call + " called " +
                        (state_ == state::committed ? "after commit" : "after a failure"));
        }
        fail(std::string(call) + " called after commit began");
    }

    [[noreturn]] void fail_errno(const std::string& what) { fail_code(what, errno); }

    [[noreturn]] void fail_code(const std::string& what, int code) {
        fail(what + " (temporary file '" + temporary_ + "'): " + detail::system_error_text(code));
    }

    void flush() {
        if (direct_) {
            const int code = direct_->finish();
            direct_.reset();
            if (code != 0) fail_code("writing failed", code);
            return;
        }
        write_all(buffer_.data(), buffer_.size());
        buffer_.clear();
    }

    void write_all(const std::uint8_t* data, std::size_t size) {
        const std::size_t requested = size;
        const int code = detail::write_fully(fd_, data, size);
        file_offset_ += requested - size;
        if (code != 0) fail_code("writing failed", code);
        start_writeback();
    }

    /// Asks the kernel to start writing what has been written so far, every 32 MiB, without
    /// waiting for it (Linux). The data reaches the disk while the rest is still being
    /// converted, so the fsync() of commit() finds little left to do; durability still rests
    /// on that fsync() alone. A file system without the call just ignores the hint.
    void start_writeback() noexcept {
#if defined(__linux__)
        constexpr std::uint64_t stride = std::uint64_t(32) << 20;
        if (file_offset_ - writeback_from_ < stride) return;
        ::sync_file_range(fd_, static_cast<off_t>(writeback_from_),
                          static_cast<off_t>(file_offset_ - writeback_from_),
                          SYNC_FILE_RANGE_WRITE);
        writeback_from_ = file_offset_;
#endif
    }

    void sync_folder() noexcept {
        const std::size_t slash = target_.rfind('/');
        const std::string folder = slash == std::string::npos ? std::string(".")
                                   : slash == 0               ? std::string("/")
                                                              : target_.substr(0, slash);
        const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) return;
        ::fsync(fd);
        ::close(fd);
    }

    std::string destination_;
    std::string target_;
    std::string temporary_;
    int fd_ = -1;
    int cleanup_slot_ = -1;
    bool temporary_exists_ = false;
    state state_ = state::writing;
    std::vector<std::uint8_t> buffer_;
    std::unique_ptr<detail::direct_stream> direct_;  ///< set once the file outgrew buffer_
    std::uint64_t written_ = 0;
    std::uint64_t file_offset_ = 0;     ///< bytes handed to write(2) so far
    std::uint64_t writeback_from_ = 0;  ///< where the next writeback request starts
};

/// Commits several files so that all of them replace their destinations or none does.
/// Every file is first flushed to disk (where a full disk or a write error shows); only
/// then are they renamed, one after the other, with the termination signals held back.
/// Should a rename fail after others succeeded, those are rolled back: the previous file
/// comes back from a hard link made beforehand (a destination that did not exist is
/// removed again). On a file system without hard links the rollback of a file that existed
/// before is not possible; the error then says so.
inline void commit_together(std::initializer_list<atomic_file*> files) {
    std::vector<atomic_file*> list;
    for (atomic_file* f : files) {
        if (f != nullptr) list.push_back(f);
    }
    try {
        for (atomic_file* f : list) f->prepare();
    } catch (...) {
        for (atomic_file* f : list) f->discard();
        throw;
    }
    struct backup {
        std::string path;  // empty: the destination did not exist
        bool existed = false;
        bool linked = false;
    };
    std::vector<backup> backups(list.size());
    termination_signals_blocked blocked;
    std::size_t done = 0;
    try {
        for (; done < list.size(); ++done) {
            atomic_file& f = *list[done];
            backup& b = backups[done];
            struct stat status {};
            b.existed = ::lstat(f.target().c_str(), &status) == 0;
            if (b.existed && list.size() > 1) {
                b.path = std::string(f.temporary_path()) + detail::backup_suffix;
                b.linked = ::link(f.target().c_str(), b.path.c_str()) == 0;
            }
            f.publish();
        }
    } catch (const error& e) {
        std::string outcome = " (no file was replaced)";
        for (std::size_t i = done; i-- > 0;) {
            const atomic_file& f = *list[i];
            const backup& b = backups[i];
            const bool restored =
                b.existed ? b.linked && ::rename(b.path.c_str(), f.target().c_str()) == 0
                          : ::unlink(f.target().c_str()) == 0;
            if (!restored) outcome = " (" + f.target() + " could not be restored)";
        }
        for (std::size_t i = done + 1; i < list.size(); ++i) list[i]->discard();
        for (std::size_t i = 0; i < list.size(); ++i) {
            if (backups[i].linked) ::unlink(backups[i].path.c_str());
        }
        throw error(e.what() + outcome);
    }
    for (std::size_t i = 0; i < list.size(); ++i) {
        if (backups[i].linked) ::unlink(backups[i].path.c_str());
        list[i]->finish();
    }
}

}  // namespace qmix::io
