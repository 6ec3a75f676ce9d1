// A lazy coroutine that a connection state machine is written as: it reads top to bottom like
// the thread it replaces, but every wait is a suspension that the connection driver resumes.
// `co_await task` runs the inner task and resumes the caller when it is done (symmetric
// transfer: nested waits use no stack). Destroying a suspended task destroys the tasks it
// awaits too.
#pragma once

#include <coroutine>
#include <exception>
#include <optional>
#include <utility>

namespace sluice::plugins::mqtt_source {

template <class T>
class Task;

namespace detail {

// Resumes the task's caller, if any, when the task ends.
struct ResumeCaller {
    bool await_ready() noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
        const auto next = h.promise().continuation;
        return next ? next : std::noop_coroutine();
    }
    void await_resume() noexcept {}
};

struct PromiseBase {
    std::coroutine_handle<> continuation;
    std::exception_ptr error;

    std::suspend_always initial_suspend() noexcept { return {}; }
    ResumeCaller final_suspend() noexcept { return {}; }
    void unhandled_exception() noexcept { error = std::current_exception(); }
};

template <class T>
struct Promise : PromiseBase {
    std::optional<T> value;
    Task<T> get_return_object() noexcept;
    template <class U>
    void return_value(U&& v) {
        value.emplace(std::forward<U>(v));
    }
    T take() {
        if (error) std::rethrow_exception(error);
        return std::move(*value);
    }
};

template <>
struct Promise<void> : PromiseBase {
    Task<void> get_return_object() noexcept;
    void return_void() noexcept {}
    void take() {
        if (error) std::rethrow_exception(error);
    }
};

}  // namespace detail

template <class T>
class [[nodiscard]] Task {
public:
    using promise_type = detail::Promise<T>;
    using Handle = std::coroutine_handle<promise_type>;

    Task() = default;
    explicit Task(Handle h) noexcept : h_(h) {}
    Task(Task&& other) noexcept : h_(std::exchange(other.h_, {})) {}
    Task& operator=(Task&& other) noexcept {
        if (this != &other) {
            reset();
            h_ = std::exchange(other.h_, {});
        }
        return *this;
    }
    ~Task() { reset(); }

    void reset() {
        if (h_) std::exchange(h_, {}).destroy();
    }
    explicit operator bool() const { return static_cast<bool>(h_); }
    bool done() const { return !h_ || h_.done(); }
    /// The top-level task's handle, for the first resume.
    std::coroutine_handle<> handle() const { return h_; }
    /// After done(): rethrows what escaped the task.
    void rethrow_if_failed() const {
        if (h_ && h_.promise().error) std::rethrow_exception(h_.promise().error);
    }

    bool await_ready() const noexcept { return false; }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> caller) noexcept {
        h_.promise().continuation = caller;
        return h_;
    }
    T await_resume() { return h_.promise().take(); }

private:
    Handle h_;
};

namespace detail {

template <class T>
Task<T> Promise<T>::get_return_object() noexcept {
    return Task<T>(std::coroutine_handle<Promise<T>>::from_promise(*this));
}

inline Task<void> Promise<void>::get_return_object() noexcept {
    return Task<void>(std::coroutine_handle<Promise<void>>::from_promise(*this));
}

}  // namespace detail

}  // namespace sluice::plugins::mqtt_source
