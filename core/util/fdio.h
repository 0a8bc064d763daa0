/* fdio: whole-buffer writes on a file descriptor, directory syncs, and
 * removing a file tree.
 *
 * write(2)/pwrite(2) may write less than asked or be interrupted; these
 * loop until everything is written. Errors: -errno of the failing call, or
 * -EIO if the call wrote nothing without an error. Blocking: call from a
 * helper thread or on fds where blocking is acceptable.
 */
#ifndef CAIRN_CORE_UTIL_FDIO_H
#define CAIRN_CORE_UTIL_FDIO_H

#include <stddef.h>
#include <stdint.h>

int fd_write_all(int fd, const void *buf, size_t n);
int fd_pwrite_all(int fd, const void *buf, size_t n, uint64_t off);

/* fsync the directory dir, so the names created, renamed or removed in it
 * survive a crash. 0 or -errno (of open or fsync). */
int fd_fsync_dir(const char *dir);

/* rm -rf path (a file or a directory tree, symlinks not followed);
 * absent is fine. 0 or -errno of the first failure. */
int fd_rm_tree(const char *path);

#endif
