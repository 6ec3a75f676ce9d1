// CRC-32C (Castagnoli, the polynomial iSCSI, ext4 and Kafka record batches use), for the disk
// spool's record and file checksums.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sluice {

/// CRC-32C of `size` bytes, continuing from `crc` (the result of an earlier call, 0 to start),
/// so that crc32c(b, nb, crc32c(a, na)) == crc32c(a ++ b). Uses the SSE4.2 crc32 instruction
/// when the CPU has it (chosen once, at first use), a slicing-by-8 table otherwise.
std::uint32_t crc32c(const void* data, std::size_t size, std::uint32_t crc = 0) noexcept;

/// The portable table implementation, whatever the CPU (for tests and comparisons).
std::uint32_t crc32c_portable(const void* data, std::size_t size, std::uint32_t crc = 0) noexcept;

/// True when crc32c() uses the CPU's crc32 instruction.
bool crc32c_hardware() noexcept;

}  // namespace sluice
