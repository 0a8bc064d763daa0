#include "core/util/fdio.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdbool.h>
#include <unistd.h>

/* The loop behind both: write(2) when !at, else pwrite(2) at off. */
static int fd_write_loop(int fd, const void *buf, size_t n, bool at,
			 uint64_t off)
{
	const uint8_t *p = buf;

	while (n) {
		ssize_t w = at ? pwrite(fd, p, n, (off_t)off) : write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if (w == 0)
			return -EIO;
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

int fd_write_all(int fd, const void *buf, size_t n)
{
	return fd_write_loop(fd, buf, n, false, 0);
}

int fd_pwrite_all(int fd, const void *buf, size_t n, uint64_t off)
{
	return fd_write_loop(fd, buf, n, true, off);
}

int fd_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), err = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		err = -errno;
	close(fd);
	return err;
}

static int rm_one(const char *p, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p) == 0 || errno == ENOENT ? 0 : -1;
}

int fd_rm_tree(const char *path)
{
	if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0)
		return 0;
	return errno == ENOENT ? 0 : -errno;
}
