#include "scratch.h"

#include <c10/core/impl/alloc_cpu.h>

#include <algorithm>
#include <vector>

namespace cnnext::cpu {
namespace {

// This thread's free blocks (freed when the thread ends).
struct FreeBlocks {
  std::vector<ScratchBlock> blocks;
  ~FreeBlocks() {
    for (const auto& block : blocks) c10::free_cpu(block.memory);
  }
};

std::vector<ScratchBlock>& free_blocks() {
  thread_local FreeBlocks instance;
  return instance.blocks;
}

bool smaller(const ScratchBlock& a, const ScratchBlock& b) { return a.bytes < b.bytes; }

}  // namespace

ScratchBlock take_scratch(size_t bytes) {
  if (bytes == 0) return {};
  auto& blocks = free_blocks();
  auto best = blocks.end();
  for (auto it = blocks.begin(); it != blocks.end(); ++it) {
    if (it->bytes >= bytes && (best == blocks.end() || it->bytes < best->bytes)) best = it;
  }
  if (best == blocks.end()) return {c10::alloc_cpu(bytes), bytes};
  const ScratchBlock block = *best;
  blocks.erase(best);
  return block;
}

void give_back_scratch(ScratchBlock block) {
  if (block.memory == nullptr) return;
  if (block.bytes > kMaxCachedBytes) {
    c10::free_cpu(block.memory);
    return;
  }
  auto& blocks = free_blocks();
  blocks.push_back(block);
  if (blocks.size() > kCachedBlocks) {  // keep the largest
    const auto smallest = std::min_element(blocks.begin(), blocks.end(), smaller);
    c10::free_cpu(smallest->memory);
    blocks.erase(smallest);
  }
}

}  // namespace cnnext::cpu
