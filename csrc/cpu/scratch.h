// Scratch memory of the CPU kernels: 64-byte aligned, without the cost of a tensor (a dispatcher call and a
// TensorImpl: on a small layer, each was a tenth of the call), and reused. Every thread keeps the few largest
// blocks its scratch released: kernels that take and free megabytes on every call made glibc hand the pages back
// to the OS and fault them in again (a lab HDC-net training step took 2,600 page faults on cnnext against
// 1,350 on PyTorch).
#pragma once
#include <cstddef>
#include <cstdint>
#include <utility>

namespace cnnext::cpu {

// At most kCachedBlocks free blocks per thread, none over kMaxCachedBytes; the others are freed at once.
constexpr size_t kCachedBlocks = 4;
constexpr size_t kMaxCachedBytes = size_t(256) << 20;

struct ScratchBlock {
  void* memory = nullptr;
  size_t bytes = 0;  // the block's size: at least what was asked for
};

ScratchBlock take_scratch(size_t bytes);  // this thread's smallest free block that is large enough, or new memory
void give_back_scratch(ScratchBlock block);  // to this thread's free blocks

template <typename T>
class Scratch {
 public:
  explicit Scratch(int64_t n) : block_(take_scratch(static_cast<size_t>(n) * sizeof(T))) {}
  Scratch(Scratch&& other) noexcept : block_(std::exchange(other.block_, {})) {}
  Scratch& operator=(Scratch&& other) noexcept {
    std::swap(block_, other.block_);
    return *this;
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { give_back_scratch(block_); }

  T* get() const { return static_cast<T*>(block_.memory); }

 private:
  ScratchBlock block_;
};

}  // namespace cnnext::cpu
