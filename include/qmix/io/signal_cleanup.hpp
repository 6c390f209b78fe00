// SPDX-License-Identifier: MIT
#pragma once

// Temporary files removed when a termination signal ends the process (POSIX).
//
// Unwinding removes an unfinished output (atomic_file's destructor), but SIGINT, SIGTERM or
// SIGHUP end the process without unwinding. Every atomic_file registers its temporary here
// for its lifetime; a program that wants them removed on those signals calls
// remove_temporaries_on_termination_signals() once (a library never installs handlers on its
// own). The registry is a fixed table of lock-free atomic pointers, so the handler touches
// nothing but those and unlink(), both safe in a signal handler.

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <initializer_list>

namespace qmix::io {

namespace detail {

static_assert(ATOMIC_POINTER_LOCK_FREE == 2, "the cleanup registry needs lock-free pointers");

inline constexpr std::size_t cleanup_slots = 64;
/// Paths to unlink on a termination signal; null where free. Zero-initialized (static storage).
inline std::atomic<const char*> cleanup_paths[cleanup_slots];

extern "C" inline void remove_temporaries_and_die(int signal_number) {
    for (auto& slot : cleanup_paths) {
        if (const char* path = slot.load()) ::unlink(path);
    }
    // SA_RESETHAND restored the default action: the raised signal ends the process when the
    // handler returns, with the status a shell expects (128 + signal number).
    ::raise(signal_number);
}

}  // namespace detail

/// The signals after which registered temporaries are removed.
inline constexpr int termination_signals[] = {SIGINT, SIGTERM, SIGHUP};

/// Registers `path` (which must stay valid until unregistered) for removal on a termination
/// signal. Returns the slot, or -1 when every slot is taken (the file is then still removed
/// on unwinding, not on a signal).
inline int register_temporary(const char* path) noexcept {
    for (std::size_t i = 0; i < detail::cleanup_slots; ++i) {
        const char* expected = nullptr;
        if (detail::cleanup_paths[i].compare_exchange_strong(expected, path)) return int(i);
    }
    return -1;
}

inline void unregister_temporary(int slot) noexcept {
    if (slot >= 0 && std::size_t(slot) < detail::cleanup_slots) {
        detail::cleanup_paths[slot].store(nullptr);
    }
}

/// Unlinks every registered temporary. Safe to call from a signal handler (a program's own
/// SIGBUS handler, say).
inline void remove_registered_temporaries() noexcept {
    for (auto& slot : detail::cleanup_paths) {
        if (const char* path = slot.load()) ::unlink(path);
    }
}

/// Installs, for SIGINT, SIGTERM and SIGHUP, a handler that removes the registered
/// temporaries and then lets the signal end the process as it would have. An ignored
/// SIGHUP (nohup) stays ignored; SIGINT and SIGTERM are caught even when ignored on entry
/// (a shell without job control ignores SIGINT in its background commands, and `kill -INT`
/// should still stop them cleanly).
inline void remove_temporaries_on_termination_signals() noexcept {
    for (const int s : termination_signals) {
        struct sigaction old {};
        if (s == SIGHUP && ::sigaction(s, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) {
            continue;
        }
        struct sigaction action {};
        action.sa_handler = detail::remove_temporaries_and_die;
        action.sa_flags = SA_RESETHAND;
        sigemptyset(&action.sa_mask);
        ::sigaction(s, &action, nullptr);
    }
}

/// Blocks the termination signals in the calling thread for its lifetime: between creating
/// a temporary and registering it, and while several files are renamed into place, a signal
/// must wait.
class termination_signals_blocked {
  public:
    termination_signals_blocked() noexcept {
        sigset_t blocked;
        sigemptyset(&blocked);
        for (const int s : termination_signals) sigaddset(&blocked, s);
        ::pthread_sigmask(SIG_BLOCK, &blocked, &previous_);
    }
    ~termination_signals_blocked() { ::pthread_sigmask(SIG_SETMASK, &previous_, nullptr); }
    termination_signals_blocked(const termination_signals_blocked&) = delete;
    termination_signals_blocked& operator=(const termination_signals_blocked&) = delete;

  private:
    sigset_t previous_;
};

}  // namespace qmix::io
