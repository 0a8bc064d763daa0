/* crc32c: CRC-32C (Castagnoli, reflected polynomial 0x82F63B78).
 *
 * The checksum of the WAL and of anything else cairn writes to disk. Uses
 * the SSE4.2 crc32 instruction when the CPU has it (checked once at run
 * time) and a slice-by-8 table otherwise; both give identical results.
 */
#ifndef CAIRN_CORE_UTIL_CRC32C_H
#define CAIRN_CORE_UTIL_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extend crc over len bytes of buf and return the new crc.
 *
 * crc: 0 to start a new checksum, or the value a previous call returned to
 *      chain: crc32c(crc32c(0, a, n), b, m) == crc32c(0, a||b, n + m).
 * buf: read only, borrowed for the call; may be NULL when len is 0.
 * Never fails; thread-safe. crc32c(0, "123456789", 9) == 0xE3069283.
 */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

/* The portable table path alone, whatever the CPU (for tests that compare
 * both paths). Same contract as crc32c(). */
uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len);

#endif
