// SPDX-License-Identifier: MIT
// io/: atomic output files (temporary naming, special destinations, stale temporaries,
// commit of several files, signal cleanup) and thread start failures.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "qmix/io/atomic_file.hpp"
#include "qmix/io/signal_cleanup.hpp"
#include "qmix/parallel.hpp"

#include "support.hpp"

namespace fs = std::filesystem;

namespace {

using io_folder = qmix::test::scratch_folder;

std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

void write_text(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary);
    out << text;
}

std::string base_name(const std::string& path) {
    return path.substr(path.rfind('/') + 1);
}

/// A PID that ran and has ended: a child that exits at once, reaped.
long dead_pid() {
    const pid_t child = ::fork();
    if (child == 0) ::_exit(0);
    int status = 0;
    ::waitpid(child, &status, 0);
    return static_cast<long>(child);
}

bool valid_utf8(const std::string& text) {
    for (std::size_t i = 0; i < text.size();) {
        const auto c = static_cast<unsigned char>(text[i]);
        const std::size_t length = c < 0x80         ? 1
                                   : (c >> 5) == 6  ? 2
                                   : (c >> 4) == 14 ? 3
                                   : (c >> 3) == 30 ? 4
                                                    : 0;
        if (length == 0 || i + length > text.size()) return false;
        for (std::size_t k = 1; k < length; ++k) {
            if ((static_cast<unsigned char>(text[i + k]) & 0xc0) != 0x80) return false;
        }
        i += length;
    }
    return true;
}

}  // namespace

TEST_CASE("an atomic file reaches its destination only on commit", "[io]") {
    io_folder folder;
    const std::string destination = folder.file("report.json");
    write_text(destination, "old");
    {
        qmix::io::atomic_file out(destination);
        const std::string temporary = base_name(out.temporary_path());
        CHECK_THAT(temporary,
                   Catch::StartsWith(".report.json.qmix-" + std::to_string(::getpid()) + "-"));
        CHECK(temporary.size() ==
              std::string(".report.json.qmix-").size() + std::to_string(::getpid()).size() + 7);
        out.write(std::string("new"));
        CHECK(read_text(destination) == "old");
        CHECK(folder.listing().size() == 2);
    }
    CHECK(folder.listing() == std::set<std::string>{"report.json"});
    CHECK(read_text(destination) == "old");

    qmix::io::atomic_file out(destination);
    out.write(std::string("new"));
    out.commit();
    CHECK(read_text(destination) == "new");
    CHECK(folder.listing() == std::set<std::string>{"report.json"});
    CHECK_THROWS_WITH(out.write(std::string("x")), Catch::Contains("after commit"));
}

TEST_CASE("temporary names fit NAME_MAX for every destination name that does", "[io]") {
    io_folder folder;
    for (const std::size_t length : {std::size_t(200), std::size_t(230), std::size_t(243),
                                     std::size_t(250), std::size_t(254), std::size_t(255)}) {
        const std::string name(length, 'n');
        qmix::io::atomic_file out(folder.file(name));
        CHECK(base_name(out.temporary_path()).size() <= 255 - 4);  // room for ".old"
        out.write(std::string("x"));
        out.commit();
        CHECK(read_text(folder.file(name)) == "x");
        fs::remove(folder.file(name));
    }
    SECTION("a cut never splits a UTF-8 character") {
        for (const std::size_t pad : {std::size_t(0), std::size_t(1)}) {
            std::string name(pad, 'a');
            while (name.size() + 2 <= 254) name += "\xc3\xa9";  // é, two bytes each
            qmix::io::atomic_file out(folder.file(name));
            const std::string temporary = base_name(out.temporary_path());
            CHECK(temporary.size() <= 251);
            CHECK(valid_utf8(temporary.substr(0, temporary.rfind(".qmix-"))));
        }
    }
    SECTION("a name longer than NAME_MAX is refused before anything is created") {
        CHECK_THROWS_WITH(qmix::io::atomic_file(folder.file(std::string(256, 'n'))),
                          Catch::Contains("file name is 256 bytes long"));
        CHECK(folder.listing().empty());
    }
}

TEST_CASE("only a regular file or a missing one is replaced; links are written through", "[io]") {
    io_folder folder;
    SECTION("a FIFO is refused and stays a FIFO") {
        const std::string fifo = folder.file("fifo");
        REQUIRE(::mkfifo(fifo.c_str(), 0644) == 0);
        CHECK_THROWS_WITH(qmix::io::atomic_file(fifo), Catch::Contains("fifo is a FIFO"));
        struct stat status {};
        REQUIRE(::lstat(fifo.c_str(), &status) == 0);
        CHECK(S_ISFIFO(status.st_mode));
        CHECK(folder.listing() == std::set<std::string>{"fifo"});
    }
    SECTION("a link to a FIFO is refused") {
        REQUIRE(::mkfifo(folder.file("fifo").c_str(), 0644) == 0);
        fs::create_symlink("fifo", folder.file("link"));
        CHECK_THROWS_WITH(qmix::io::atomic_file(folder.file("link")), Catch::Contains("is a FIFO"));
        CHECK(fs::is_symlink(folder.file("link")));
    }
    SECTION("a folder is refused") {
        fs::create_directory(folder.file("sub"));
        CHECK_THROWS_WITH(qmix::io::atomic_file(folder.file("sub")),
                          Catch::Contains("is a folder"));
    }
    SECTION("a symbolic link is written through: its target changes, the link stays") {
        fs::create_directory(folder.file("real"));
        write_text(folder.file("real/model.bin"), "old");
        REQUIRE(::chmod(folder.file("real/model.bin").c_str(), 0640) == 0);
        fs::create_symlink("real/model.bin", folder.file("link.bin"));
        qmix::io::atomic_file out(folder.file("link.bin"));
        CHECK_THAT(out.temporary_path(), Catch::Contains("/real/.model.bin.qmix-"));
        out.write(std::string("new"));
        out.commit();
        CHECK(fs::is_symlink(folder.file("link.bin")));
        CHECK(fs::read_symlink(folder.file("link.bin")) == "real/model.bin");
        CHECK(read_text(folder.file("real/model.bin")) == "new");
        struct stat status {};
        REQUIRE(::stat(folder.file("real/model.bin").c_str(), &status) == 0);
        CHECK((status.st_mode & 07777) == 0640);
        CHECK(folder.listing() == std::set<std::string>{"link.bin", "real"});
    }
    SECTION("a dangling link is refused and stays") {
        fs::create_symlink("nowhere/x.bin", folder.file("dangling"));
        CHECK_THROWS_WITH(qmix::io::atomic_file(folder.file("dangling")),
                          Catch::Contains("symbolic link whose target cannot be written"));
        CHECK(fs::is_symlink(folder.file("dangling")));
    }
    SECTION("a destination that turns into a FIFO before commit is left alone") {
        qmix::io::atomic_file out(folder.file("late"));
        out.write(std::string("x"));
        REQUIRE(::mkfifo(folder.file("late").c_str(), 0644) == 0);
        CHECK_THROWS_WITH(out.commit(), Catch::Contains("no longer a regular file"));
        struct stat status {};
        REQUIRE(::lstat(folder.file("late").c_str(), &status) == 0);
        CHECK(S_ISFIFO(status.st_mode));
        CHECK(folder.listing() == std::set<std::string>{"late"});
    }
}

TEST_CASE("stale temporaries of dead processes are removed, nothing else", "[io]") {
    io_folder folder;
    const long dead = dead_pid();
    const std::string stale = ".out.bin.qmix-" + std::to_string(dead) + "-abcdef";
    const std::string stale_backup = stale + ".old";
    const std::string alive = ".out.bin.qmix-" + std::to_string(::getppid()) + "-abcdef";
    const std::string locked = ".out.bin.qmix-" + std::to_string(dead) + "-locked";
    const std::string old_style = ".out.bin.qmix-abcdef";  // no PID: not ours to judge
    const std::string other = ".other.bin.qmix-" + std::to_string(dead) + "-abcdef";
    const std::string not_a_pid = ".out.bin.qmix-12x4-abcdef";
    for (const auto& name : {stale, stale_backup, alive, locked, old_style, other, not_a_pid}) {
        write_text(folder.file(name), "left over");
    }
    // A lock held stands for a process alive in another PID namespace.
    const int fd = ::open(folder.file(locked).c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    REQUIRE(::flock(fd, LOCK_EX) == 0);
    {
        qmix::io::atomic_file out(folder.file("out.bin"));
        const auto names = folder.listing();
        CHECK(names.count(stale) == 0);
        CHECK(names.count(stale_backup) == 0);
        for (const auto& kept : {alive, locked, old_style, other, not_a_pid}) {
            CHECK(names.count(kept) == 1);
        }
        CHECK(names.count(base_name(out.temporary_path())) == 1);
    }
    ::close(fd);
}

TEST_CASE("commit_together replaces every file or none", "[io]") {
    io_folder folder;
    const std::string model = folder.file("model.bin");
    const std::string report = folder.file("report.json");
    SECTION("both committed") {
        write_text(model, "old model");
        qmix::io::atomic_file a(model);
        qmix::io::atomic_file b(report);
        a.write(std::string("new model"));
        b.write(std::string("{}"));
        qmix::io::commit_together({&a, &b});
        CHECK(read_text(model) == "new model");
        CHECK(read_text(report) == "{}");
        CHECK(folder.listing() == std::set<std::string>{"model.bin", "report.json"});
    }
    SECTION("a failing rename of the second file rolls back the first") {
        write_text(model, "old model");
        qmix::io::atomic_file a(model);
        qmix::io::atomic_file b(report);
        a.write(std::string("new model"));
        b.write(std::string("{}"));
        fs::create_directory(report);  // the report's path becomes a folder meanwhile
        CHECK_THROWS_WITH(
            qmix::io::commit_together({&a, &b}),
            Catch::Contains("no longer a regular file") && Catch::Contains("no file was replaced"));
        CHECK(read_text(model) == "old model");
        CHECK(folder.listing() == std::set<std::string>{"model.bin", "report.json"});
    }
    SECTION("a new first file is removed again when the second fails") {
        qmix::io::atomic_file a(model);
        qmix::io::atomic_file b(report);
        a.write(std::string("new model"));
        fs::create_directory(report);
        CHECK_THROWS(qmix::io::commit_together({&a, &b}));
        CHECK(folder.listing() == std::set<std::string>{"report.json"});
    }
    SECTION("a write failure of the second file commits neither") {
        write_text(model, "old model");
        qmix::io::atomic_file a(model, 1 << 12);
        qmix::io::atomic_file b(report, 1 << 12);
        a.write(std::string(100, 'm'));   // both still in their buffers:
        b.write(std::string(3000, 'r'));  // the flush happens inside commit_together
        struct rlimit saved;
        REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
        const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
        struct rlimit limited = saved;
        limited.rlim_cur = 1000;
        REQUIRE(::setrlimit(RLIMIT_FSIZE, &limited) == 0);
        std::string message;
        try {
            qmix::io::commit_together({&a, &b});
        } catch (const qmix::error& e) {
            message = e.what();
        }
        ::setrlimit(RLIMIT_FSIZE, &saved);
        std::signal(SIGXFSZ, old_handler);
        CHECK_THAT(message, Catch::Contains("report.json") && Catch::Contains("writing failed"));
        CHECK(read_text(model) == "old model");
        CHECK(folder.listing() == std::set<std::string>{"model.bin"});
        CHECK_FALSE(a.committed());
    }
}

namespace {

/// The open file flags (fcntl F_GETFL) of this process's descriptor for path; -1 if none.
int open_flags_of(const std::string& path) {
    for (const auto& entry : fs::directory_iterator("/proc/self/fd")) {
        std::error_code ignored;
        if (fs::read_symlink(entry.path(), ignored) != path) continue;
        return ::fcntl(std::stoi(entry.path().filename().string()), F_GETFL);
    }
    return -1;
}

/// Whether the file system of path takes O_DIRECT (path is created and removed).
bool accepts_direct_io(const std::string& path) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    REQUIRE(fd >= 0);
    const bool accepted = ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_DIRECT) == 0;
    ::close(fd);
    ::unlink(path.c_str());
    return accepted;
}

/// Bytes that differ from one position to the next (no two blocks of 4 KiB alike).
std::string pattern(std::size_t size, unsigned seed) {
    std::string bytes(size, '\0');
    std::uint32_t state = seed * 2654435761u + 1;
    for (char& c : bytes) {
        state = state * 1664525u + 1013904223u;
        c = static_cast<char>(state >> 24);
    }
    return bytes;
}

}  // namespace

TEST_CASE("a file that outgrows its buffer is written around the page cache, byte for byte",
          "[io]") {
    io_folder folder;
    const std::string destination = folder.file("model.bin");
    // Pieces across the buffer (4 KiB), the alignment and the 4 MiB blocks of the stream.
    const std::size_t sizes[] = {1,
                                 4095,
                                 4097,
                                 100,
                                 std::size_t(3) << 20,
                                 (std::size_t(5) << 20) + 7,
                                 4096,
                                 std::size_t(4) << 20,
                                 12345};
    std::string expected;
    {
        qmix::io::atomic_file out(destination, 1 << 12);
        unsigned seed = 0;
        for (const std::size_t size : sizes) {
            const std::string piece = pattern(size, ++seed);
            out.write(piece.data(), piece.size());
            expected += piece;
        }
        const int flags = open_flags_of(out.temporary_path());
        REQUIRE(flags >= 0);
        if (accepts_direct_io(folder.file("probe"))) {
            CHECK((flags & O_DIRECT) != 0);
        } else {
            WARN("the file system of " << folder.file("")
                                       << " refuses O_DIRECT: the file was "
                                          "written through the page cache");
        }
        CHECK(out.bytes_written() == expected.size());
        out.commit();
    }
    CHECK(read_text(destination) == expected);
    CHECK(folder.listing() == std::set<std::string>{"model.bin"});

    SECTION("a file given up midway leaves nothing") {
        {
            qmix::io::atomic_file out(folder.file("given_up.bin"), 1 << 12);
            const std::string piece = pattern(std::size_t(3) << 20, 11);
            for (int i = 0; i < 5; ++i) out.write(piece.data(), piece.size());
        }
        CHECK(folder.listing() == std::set<std::string>{"model.bin"});
    }
    SECTION("a small file stays in its buffer") {
        qmix::io::atomic_file out(folder.file("small.json"));
        out.write(std::string(4096, 's'));
        CHECK((open_flags_of(out.temporary_path()) & O_DIRECT) == 0);
        out.commit();
        CHECK(read_text(folder.file("small.json")) == std::string(4096, 's'));
    }
}

TEST_CASE("a write refused in the background thread fails the file and leaves nothing", "[io]") {
    io_folder folder;
    write_text(folder.file("model.bin"), "old model");
    struct rlimit saved;
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
    const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
    struct rlimit limited = saved;
    limited.rlim_cur = std::size_t(6) << 20;  // the second block of 4 MiB crosses it
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &limited) == 0);
    std::string message;
    try {
        qmix::io::atomic_file out(folder.file("model.bin"));
        const std::string piece = pattern(std::size_t(1) << 20, 7);
        for (int i = 0; i < 16; ++i) out.write(piece.data(), piece.size());
        out.commit();
    } catch (const qmix::error& e) {
        message = e.what();
    }
    ::setrlimit(RLIMIT_FSIZE, &saved);
    std::signal(SIGXFSZ, old_handler);
    CHECK_THAT(message, Catch::Contains("model.bin: writing failed") &&
                            Catch::Contains(std::strerror(EFBIG)));
    CHECK(read_text(folder.file("model.bin")) == "old model");
    CHECK(folder.listing() == std::set<std::string>{"model.bin"});
}

TEST_CASE("a termination signal removes the temporaries and ends the process", "[io]") {
    io_folder folder;
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        qmix::io::remove_temporaries_on_termination_signals();
        qmix::io::atomic_file a(folder.file("a.bin"));
        qmix::io::atomic_file b(folder.file("b.json"));
        a.write(std::string("data"));
        ::raise(SIGTERM);
        ::_exit(0);  // not reached
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WIFSIGNALED(status));
    CHECK((WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM));
    CHECK(folder.listing().empty());
}

TEST_CASE("a thread that cannot start is a qmix::error", "[io][parallel]") {
#if defined(__SANITIZE_ADDRESS__)
    WARN("not run under AddressSanitizer: its shadow memory defeats an address-space limit");
#else
    if (const char* emulated = std::getenv("QMIX_UNDER_EMULATOR"); emulated && *emulated) {
        // qemu-user maps the guest's thread stacks inside its own reservation, so an
        // address-space limit on the process does not stop them from starting.
        WARN("not run under an emulator (QMIX_UNDER_EMULATOR): the limit cannot bite there");
        return;
    }
    // In a child process: an address-space limit just above what is mapped now leaves no
    // room for thread stacks (8 MiB each).
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        std::ifstream statm("/proc/self/statm");
        unsigned long pages = 0;
        statm >> pages;
        struct rlimit limit;
        limit.rlim_cur = limit.rlim_max =
            pages * static_cast<unsigned long>(::sysconf(_SC_PAGESIZE)) + (16ul << 20);
        if (::setrlimit(RLIMIT_AS, &limit) != 0) ::_exit(3);
        // 0 when `start` fails with the words a user needs, else why not.
        const auto refused = [](auto&& start) {
            try {
                start();
            } catch (const qmix::error& e) {
                const std::string text = e.what();
                return text.find("cannot start worker thread") != std::string::npos &&
                               text.find("try fewer threads") != std::string::npos
                           ? 0
                           : 4;
            } catch (...) {
                return 5;
            }
            return 6;  // every thread started: the limit did not bite
        };
        std::atomic<long> done{0};
        const int ranges = refused([&] {
            qmix::parallel_ranges(
                4096, 256, [&](std::int64_t begin, std::int64_t end) { done += end - begin; });
        });
        const int pool = refused([] { qmix::worker_pool threads(256); });
        ::_exit(ranges != 0 ? ranges : pool != 0 ? 10 + pool : 0);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
#endif
}

TEST_CASE("a worker pool runs every slot once per round and rethrows the first failure",
          "[parallel]") {
    for (unsigned threads : {1u, 2u, 5u}) {
        qmix::worker_pool pool(threads);
        REQUIRE(pool.size() == threads);
        std::vector<std::atomic<int>> calls(threads);
        for (int round = 1; round <= 50; ++round) {
            pool.run([&](unsigned slot) { ++calls[slot]; });
            for (unsigned slot = 0; slot < threads; ++slot) CHECK(calls[slot] == round);
        }
        // Every slot fails: the first by slot order is the one rethrown, after all finished.
        std::atomic<unsigned> finished{0};
        CHECK_THROWS_WITH(pool.run([&](unsigned slot) {
            ++finished;
            throw qmix::error("slot " + std::to_string(slot));
        }),
                          "slot 0");
        CHECK(finished == threads);
        if (threads > 1) {
            CHECK_THROWS_WITH(pool.run([&](unsigned slot) {
                if (slot == threads - 1) throw qmix::error("last slot");
            }),
                              "last slot");
        }
        pool.run([&](unsigned slot) { ++calls[slot]; });  // still usable after a failure
        for (unsigned slot = 0; slot < threads; ++slot) CHECK(calls[slot] == 51);
    }
}
