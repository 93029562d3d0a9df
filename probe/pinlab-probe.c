/*
 * pinlab-probe: runs a pinlab scenario, compiled by the host to a line-oriented program, on a real
 * kernel and prints one JSON line per step. Static, no libraries beyond libc; it runs as PID 1's child
 * in a QEMU guest (results to /dev/ttyS1) and on any host for its own tests (results to stdout).
 *
 *   pinlab-probe PROGRAM [OUT]
 *
 * Program lines (docs/real-kernel.md): "N OP key=value ...", one step each; '#' lines are comments.
 * The controller (this process) owns the step loop and reads the kernel's state: /proc/PID/pagemap
 * (pfns), /proc/kpageflags (the zero page), /proc/zoneinfo and /sys/devices/system/memory (zones and
 * blocks), /proc/vmstat (counters), /dev/kmsg (OOM kills, offline failures). Each scenario process is
 * a worker process that runs the syscalls in its own mm (current->mm) and answers over two FIFOs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <linux/io_uring.h>
#include <linux/netlink.h>
#include <linux/vfio.h>
#include <net/if.h>
#include <rdma/ib_user_verbs.h>
#include <rdma/rdma_netlink.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif
#define KPF_THP 22
#define KPF_ZERO_PAGE 24
#define PMD_SIZE (2UL << 20)
#define MAXP 64     /* processes */
#define MAXM 256    /* mappings */
#define MAXH 64     /* pins held */
#define MAXZ 16
#define MAXB 4096   /* memory blocks */
#define LINE 4096

static long page_size;

/* ---------- small helpers ---------- */

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static int read_file(const char *path, char *buf, size_t n)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	size_t got = 0;
	for (;;) {
		ssize_t r = read(fd, buf + got, n - 1 - got);
		if (r <= 0)
			break;
		got += r;
		if (got >= n - 1)
			break;
	}
	close(fd);
	buf[got] = 0;
	return (int)got;
}

static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	ssize_t r = write(fd, s, strlen(s));
	int e = r < 0 ? -errno : 0;
	close(fd);
	return e;
}

static void chomp(char *s)
{
	size_t n = strlen(s);
	while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = 0;
}

/* key=value lookup in a program line's arguments */
static const char *arg(char **argv, int argc, const char *key)
{
	size_t k = strlen(key);
	for (int i = 0; i < argc; i++)
		if (!strncmp(argv[i], key, k) && argv[i][k] == '=')
			return argv[i] + k + 1;
	return NULL;
}

static long long argll(char **argv, int argc, const char *key, long long dflt)
{
	const char *v = arg(argv, argc, key);
	return v ? strtoll(v, NULL, 0) : dflt;
}

/* ---------- JSON output ---------- */

static FILE *out;
static char jbuf[1 << 16];
static size_t jlen;

static void jraw(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(jbuf + jlen, sizeof(jbuf) - jlen, fmt, ap);
	va_end(ap);
	if (n > 0)
		jlen += (size_t)n < sizeof(jbuf) - jlen ? (size_t)n : sizeof(jbuf) - jlen - 1;
}

static void jstr(const char *s)
{
	jraw("\"");
	for (; *s; s++) {
		unsigned char c = *s;
		if (c == '"' || c == '\\')
			jraw("\\%c", c);
		else if (c < 0x20)
			jraw("\\u%04x", c);
		else
			jraw("%c", c);
	}
	jraw("\"");
}

static void jflush(void)
{
	jbuf[jlen++] = '\n';
	fwrite(jbuf, 1, jlen, out);
	fflush(out);
	jlen = 0;
}

/* ---------- zones and memory blocks ---------- */

struct zone { char name[16]; int node; long start, spanned, present, managed, free, min, pcp, cma; };
static struct zone zones[MAXZ];
static int nzones;
static long block_pages;
static signed char block_zone[MAXB]; /* zone index when the online block is in one zone, else -1 */
static int nblocks;

/* /proc/zoneinfo: "Node 0, zone DMA32", then "pages free", "min", "spanned", "present", "managed", "cma", "start_pfn:" */
static void read_zones(void)
{
	static char buf[1 << 20];
	nzones = 0;
	if (read_file("/proc/zoneinfo", buf, sizeof(buf)) <= 0)
		return;
	struct zone *z = NULL;
	for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n")) {
		int node;
		char name[16];
		long v;
		if (sscanf(l, "Node %d, zone %15s", &node, name) == 2) {
			z = nzones < MAXZ ? &zones[nzones++] : NULL;
			if (z) {
				memset(z, 0, sizeof(*z));
				snprintf(z->name, sizeof(z->name), "%s", name);
				z->node = node;
			}
		} else if (z && sscanf(l, " pages free %ld", &v) == 1) z->free = v;
		else if (z && sscanf(l, " min %ld", &v) == 1) z->min = v;
		else if (z && sscanf(l, " spanned %ld", &v) == 1) z->spanned = v;
		else if (z && sscanf(l, " present %ld", &v) == 1) z->present = v;
		else if (z && sscanf(l, " managed %ld", &v) == 1) z->managed = v;
		else if (z && sscanf(l, " cma %ld", &v) == 1) z->cma = v; /* CONFIG_CMA: zone->cma_pages */
		else if (z && sscanf(l, " start_pfn: %ld", &v) == 1) z->start = v;
		else if (z && sscanf(l, " count: %ld", &v) == 1) z->pcp += v; /* a pageset's pages: not in "pages free" */
	}
}

static int zone_index(const char *name)
{
	for (int i = 0; i < nzones; i++)
		if (!strcmp(zones[i].name, name))
			return i;
	return -1;
}

static int block_path(char *p, size_t n, int b, const char *f)
{
	return snprintf(p, n, "/sys/devices/system/memory/memory%d/%s", b, f);
}

static void read_blocks(void)
{
	char buf[256], p[128];
	nblocks = 0;
	if (read_file("/sys/devices/system/memory/block_size_bytes", buf, sizeof(buf)) <= 0)
		return;
	block_pages = strtol(buf, NULL, 16) / page_size;
	for (int b = 0; b < MAXB; b++) {
		block_zone[b] = -1;
		block_path(p, sizeof(p), b, "state");
		if (read_file(p, buf, sizeof(buf)) <= 0)
			continue;
		nblocks = b + 1;
		if (strncmp(buf, "online", 6))
			continue;
		block_path(p, sizeof(p), b, "valid_zones");
		if (read_file(p, buf, sizeof(buf)) <= 0)
			continue;
		chomp(buf);
		if (!strchr(buf, ' '))
			block_zone[b] = zone_index(buf);
	}
}

/*
 * The zone of a pfn: the zone of its memory block when the block is online in one zone (ZONE_MOVABLE's
 * span overlaps the others once memory is onlined movable), else the zone whose span holds it, the
 * kernel zones first.
 */
static int pfn_zone(long pfn)
{
	if (block_pages) {
		long b = pfn / block_pages;
		if (b < nblocks && block_zone[b] >= 0)
			return block_zone[b];
	}
	int found = -1;
	for (int i = 0; i < nzones; i++)
		if (pfn >= zones[i].start && pfn < zones[i].start + zones[i].spanned) {
			if (found < 0 || !strcmp(zones[found].name, "Movable"))
				found = i;
		}
	return found;
}

static void json_zones(void)
{
	jraw("\"zones\":[");
	for (int i = 0, first = 1; i < nzones; i++) {
		struct zone *z = &zones[i];
		jraw("%s{\"name\":\"%s\",\"node\":%d,\"start_pfn\":%ld,\"spanned\":%ld,\"present\":%ld,\"managed\":%ld,\"free\":%ld,\"min\":%ld,\"pcp\":%ld,\"cma\":%ld}",
		     first ? "" : ",", z->name, z->node, z->start, z->spanned, z->present, z->managed, z->free, z->min, z->pcp, z->cma);
		first = 0;
	}
	jraw("],\"block_pages\":%ld,\"blocks\":[", block_pages);
	char buf[256], p[128];
	for (int b = 0, first = 1; b < nblocks; b++) {
		block_path(p, sizeof(p), b, "state");
		if (read_file(p, buf, sizeof(buf)) <= 0)
			continue;
		chomp(buf);
		jraw("%s{\"index\":%d,\"state\":", first ? "" : ",", b);
		jstr(buf);
		block_path(p, sizeof(p), b, "valid_zones");
		if (read_file(p, buf, sizeof(buf)) < 0)
			buf[0] = 0;
		chomp(buf);
		jraw(",\"valid_zones\":");
		jstr(buf);
		jraw("}");
		first = 0;
	}
	jraw("]");
}

/* ---------- /proc/vmstat counters ---------- */

#define MAXC 32
static char cname[MAXC][48];
static long long cbase[MAXC], cstep[MAXC];
static int ncounters;

static void read_counters(long long *v)
{
	static char buf[1 << 16];
	for (int i = 0; i < ncounters; i++)
		v[i] = -1; /* not in this kernel's /proc/vmstat */
	/* vmstat_refresh(): fold the per-CPU deltas of node counters (nr_foll_pin_*) first */
	write_file("/proc/sys/vm/stat_refresh", "1");
	if (read_file("/proc/vmstat", buf, sizeof(buf)) <= 0)
		return;
	for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n")) {
		char *sp = strchr(l, ' ');
		if (!sp)
			continue;
		*sp = 0;
		for (int i = 0; i < ncounters; i++)
			if (!strcmp(cname[i], l))
				v[i] = atoll(sp + 1);
	}
}

/* ---------- /dev/kmsg ---------- */

static int kmsg = -1;
#define MAXLOG 24

struct proc;
static void kmsg_note(const char *msg);

/* the kernel log since the last call; interesting lines go into the step's "log" */
static void kmsg_drain(void)
{
	char rec[8192];
	int n = 0;
	if (kmsg < 0)
		return;
	jraw(",\"log\":[");
	for (;;) {
		ssize_t r = read(kmsg, rec, sizeof(rec) - 1);
		if (r < 0 && errno == EPIPE)
			continue; /* records overwritten: go on from the oldest left */
		if (r <= 0)
			break;
		rec[r] = 0;
		char *msg = strchr(rec, ';');
		if (!msg)
			continue;
		msg++;
		char *nl = strchr(msg, '\n');
		if (nl)
			*nl = 0;
		static const char *keep[] = { "Out of memory", "Killed process", "oom-kill", "oom_reaper", "offlining",
			"Offlined", "migrating pfn", "failed to isolate", "page dumped because", "Kernel panic", "BUG",
			"WARNING", "page allocation failure", "onlin", NULL };
		int want = 0;
		for (int i = 0; keep[i]; i++)
			if (strstr(msg, keep[i]))
				want = 1;
		if (!want)
			continue;
		kmsg_note(msg);
		if (n++ < MAXLOG) {
			jraw(n > 1 ? "," : "");
			jstr(msg);
		}
	}
	jraw("]");
}

/* ---------- worker processes ---------- */

struct proc { char name[32]; pid_t pid; int cmd, rep; int dead; int killed_at; int oom_step; };
static struct proc procs[MAXP];
static struct { int proc; unsigned long addr, len; } maps[MAXM];
static int held_proc[MAXH];
static char fifo_dir[256];
static int cur_step;
static char killed_names[512];

static void kmsg_note(const char *msg)
{
	/* "Out of memory: Killed process 123 (name) ...", also the memcg variant */
	const char *k = strstr(msg, "Killed process ");
	if (!k)
		return;
	int pid = atoi(k + 15);
	for (int i = 0; i < MAXP; i++)
		if (procs[i].pid == pid && procs[i].oom_step != cur_step) {
			if (!procs[i].dead || procs[i].killed_at == cur_step) {
				procs[i].dead = 1;
				procs[i].killed_at = cur_step;
			}
			procs[i].oom_step = cur_step;
			size_t l = strlen(killed_names);
			snprintf(killed_names + l, sizeof(killed_names) - l, "%s\"%.31s\"", l ? "," : "", procs[i].name);
		}
}

static sigjmp_buf fault_jmp;
static volatile sig_atomic_t in_access;
/* madvise(MADV_HWPOISON): memory_failure(MF_ACTION_REQUIRED) sends the caller SIGBUS (BUS_MCEERR_AR) on
 * its way out of the syscall, not from an access: noted, and the worker goes on */
static volatile sig_atomic_t in_madvise, madvise_sigbus;

static void on_fault(int sig)
{
	if (in_access)
		siglongjmp(fault_jmp, 1);
	if (in_madvise && sig == SIGBUS) {
		madvise_sigbus = 1;
		return;
	}
	_exit(99);
}

static void alarm_noop(int sig) { (void)sig; }

/* a CPU access; -EFAULT where a real process would take SIGSEGV/SIGBUS */
static long access_word(unsigned long addr, int write, uint32_t value)
{
	volatile uint32_t *p = (volatile uint32_t *)addr;
	if (sigsetjmp(fault_jmp, 1)) {
		in_access = 0;
		return -EFAULT;
	}
	in_access = 1;
	long r;
	if (write) {
		*p = value;
		r = value;
	} else
		r = *p;
	in_access = 0;
	return r;
}

/* capget/capset without libcap: drop CAP_IPC_LOCK (14) so io_uring charges RLIMIT_MEMLOCK */
static int drop_cap_ipc_lock(void)
{
	struct { uint32_t version; int pid; } hdr = { 0x20080522, 0 };
	struct { uint32_t effective, permitted, inheritable; } data[2];
	if (syscall(SYS_capget, &hdr, data))
		return -errno;
	data[0].effective &= ~(1u << 14);
	data[0].permitted &= ~(1u << 14);
	return syscall(SYS_capset, &hdr, data) ? -errno : 0;
}

static int ring_fd[MAXH];
static int hold_pipe[MAXH][2];
static volatile long *pinmax_done; /* MAP_SHARED: pages pin_max has pinned so far, per hold (read when the worker dies) */

/* IORING_REGISTER_BUFFERS: pin_user_pages_fast(FOLL_WRITE|FOLL_LONGTERM) of every iovec (at most 1G each) */
static long w_pin(int h, unsigned long addr, unsigned long len)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	int fd = syscall(__NR_io_uring_setup, 1, &p);
	if (fd < 0)
		return -errno;
	struct iovec iov[64];
	int n = 0;
	for (unsigned long off = 0; off < len && n < 64; off += 1UL << 30, n++) {
		iov[n].iov_base = (void *)(addr + off);
		iov[n].iov_len = len - off < (1UL << 30) ? len - off : (1UL << 30);
	}
	if (syscall(__NR_io_uring_register, fd, IORING_REGISTER_BUFFERS, iov, n) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	ring_fd[h] = fd;
	return (long)(len / page_size);
}

/*
 * pin_max: a sparse buffer table (IORING_REGISTER_BUFFERS2, IORING_RSRC_REGISTER_SPARSE), then one
 * IORING_REGISTER_BUFFERS_UPDATE per chunk, each a long-term pin of its own, until one fails.
 * Returns the pages pinned; *last is 0 when every chunk pinned, else the failing chunk's -errno.
 */
static long w_pinmax(int h, unsigned long addr, unsigned long len, unsigned long chunk, long long *last)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	*last = 0;
	unsigned long n = (len + chunk - 1) / chunk;
	if (!chunk || n > 16384) /* IORING_MAX_REG_BUFFERS */
		return -EINVAL;
	int fd = syscall(__NR_io_uring_setup, 1, &p);
	if (fd < 0)
		return -errno;
	struct io_uring_rsrc_register rr;
	memset(&rr, 0, sizeof(rr));
	rr.nr = n;
	rr.flags = IORING_RSRC_REGISTER_SPARSE;
	if (syscall(__NR_io_uring_register, fd, IORING_REGISTER_BUFFERS2, &rr, sizeof(rr)) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	ring_fd[h] = fd;
	long pinned = 0;
	if (pinmax_done)
		pinmax_done[h] = 0;
	for (unsigned long i = 0; i < n; i++) {
		struct iovec iov = { (void *)(addr + i * chunk), len - i * chunk < chunk ? len - i * chunk : chunk };
		struct io_uring_rsrc_update2 up;
		memset(&up, 0, sizeof(up));
		up.offset = i;
		up.data = (unsigned long)&iov;
		up.nr = 1;
		if (syscall(__NR_io_uring_register, fd, IORING_REGISTER_BUFFERS_UPDATE, &up, sizeof(up)) < 0) {
			*last = -errno;
			break;
		}
		pinned += iov.iov_len / page_size;
		if (pinmax_done)
			pinmax_done[h] = pinned;
	}
	return pinned;
}

/* io-uring-fixed: a ring of its own (io_uring_setup) in slot h */
static long w_uring_open(int h)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	int fd = syscall(__NR_io_uring_setup, 1, &p);
	if (fd < 0)
		return -errno;
	ring_fd[h] = fd;
	return 0;
}

/* IORING_REGISTER_BUFFERS of the iovecs as given (base 0, len 0: a sparse slot), or IORING_UNREGISTER_BUFFERS */
static long w_uring_reg(int h, int n, char **av)
{
	struct iovec iov[36];
	if (ring_fd[h] <= 0)
		return -EBADF;
	for (int i = 0; i < n && i < 36; i++) {
		iov[i].iov_base = (void *)strtoul(av[2 * i], NULL, 0);
		iov[i].iov_len = strtoul(av[2 * i + 1], NULL, 0);
	}
	return syscall(__NR_io_uring_register, ring_fd[h], IORING_REGISTER_BUFFERS, iov, n) < 0 ? -errno : 0;
}

static long w_unpin(int h)
{
	if (ring_fd[h] > 0) {
		long r = syscall(__NR_io_uring_register, ring_fd[h], IORING_UNREGISTER_BUFFERS, NULL, 0);
		int e = errno;
		close(ring_fd[h]);
		ring_fd[h] = 0;
		return r < 0 ? -e : 0;
	}
	if (hold_pipe[h][0] > 0) {
		close(hold_pipe[h][0]);
		close(hold_pipe[h][1]);
		hold_pipe[h][0] = hold_pipe[h][1] = 0;
		return 0;
	}
	return -ENOENT;
}

/* vmsplice(2) into a pipe: the pipe holds a reference on every page (get_user_pages, FOLL_GET) */
static long w_hold(int h, unsigned long addr, unsigned long len)
{
	if (pipe(hold_pipe[h]))
		return -errno;
	fcntl(hold_pipe[h][1], F_SETPIPE_SZ, (int)(len < 4096 ? 4096 : len));
	ssize_t r = 0;
	while ((unsigned long)r < len) { /* vmsplice_to_pipe() may take part of the range per call */
		struct iovec iov = { (void *)(addr + r), len - r };
		ssize_t k = vmsplice(hold_pipe[h][1], &iov, 1, SPLICE_F_NONBLOCK);
		if (k <= 0) {
			if (!r)
				r = k < 0 ? -1 : 0;
			break;
		}
		r += k;
	}
	if (r <= 0) {
		int e = r < 0 ? errno : EAGAIN;
		close(hold_pipe[h][0]);
		close(hold_pipe[h][1]);
		hold_pipe[h][0] = hold_pipe[h][1] = 0;
		return -e;
	}
	return r / page_size;
}

/* ---------- VFIO type1: QEMU's edu PCI device (1234:11e8) bound to vfio-pci, behind intel-iommu ---------- */

static int vf_ct[MAXH], vf_grp[MAXH], vf_dev[MAXH];

/* the edu device's PCI address; -ENODEV without one */
static int edu_find(char *bdf, size_t n)
{
	DIR *d = opendir("/sys/bus/pci/devices");
	if (!d)
		return -ENODEV;
	int r = -ENODEV;
	for (struct dirent *e; r && (e = readdir(d));) {
		char p[300], v[32] = "", dv[32] = "";
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/vendor", e->d_name);
		read_file(p, v, sizeof(v));
		snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/device", e->d_name);
		read_file(p, dv, sizeof(dv));
		if (!strncmp(v, "0x1234", 6) && !strncmp(dv, "0x11e8", 6)) {
			snprintf(bdf, n, "%s", e->d_name);
			r = 0;
		}
	}
	closedir(d);
	return r;
}

/* bind the device to vfio-pci (driver_override, then drivers_probe); its iommu group number, or -errno */
static int vfio_bind(const char *bdf)
{
	char p[300], l[300];
	snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/driver", bdf);
	ssize_t k = readlink(p, l, sizeof(l) - 1);
	l[k > 0 ? k : 0] = 0;
	if (!strstr(l, "/vfio-pci")) {
		snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/driver_override", bdf);
		int e = write_file(p, "vfio-pci");
		if (e)
			return e;
		if (k > 0) {
			snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/driver/unbind", bdf);
			write_file(p, bdf);
		}
		if ((e = write_file("/sys/bus/pci/drivers_probe", bdf)))
			return e;
	}
	snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/iommu_group", bdf);
	k = readlink(p, l, sizeof(l) - 1);
	if (k <= 0)
		return -ENODEV; /* no IOMMU: vfio-pci will not take it */
	l[k] = 0;
	return atoi(strrchr(l, '/') + 1);
}

static void vfio_close_slot(int h)
{
	int *fds[] = { &vf_dev[h], &vf_grp[h], &vf_ct[h] };
	for (int i = 0; i < 3; i++)
		if (*fds[i] > 0) {
			close(*fds[i]);
			*fds[i] = 0;
		}
}

/*
 * open: the container (/dev/vfio/vfio), edu bound to vfio-pci, its group, VFIO_GROUP_SET_CONTAINER,
 * VFIO_SET_IOMMU(VFIO_TYPE1v2_IOMMU), VFIO_GROUP_GET_DEVICE_FD. Returns the group number or -errno.
 */
static long w_vfio_open(int h)
{
	char bdf[256], p[64];
	int ct = open("/dev/vfio/vfio", O_RDWR);
	if (ct < 0)
		return -errno;
	vf_ct[h] = ct;
	long r;
	if (ioctl(ct, VFIO_GET_API_VERSION) != VFIO_API_VERSION)
		r = -EINVAL;
	else if ((r = edu_find(bdf, sizeof(bdf))) == 0 && (r = vfio_bind(bdf)) >= 0) {
		int g = (int)r;
		snprintf(p, sizeof(p), "/dev/vfio/%d", g);
		struct vfio_group_status gs = { .argsz = sizeof(gs) };
		if ((vf_grp[h] = open(p, O_RDWR)) < 0 || ioctl(vf_grp[h], VFIO_GROUP_GET_STATUS, &gs) ||
		    ioctl(vf_grp[h], VFIO_GROUP_SET_CONTAINER, &ct) || ioctl(ct, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) ||
		    (vf_dev[h] = ioctl(vf_grp[h], VFIO_GROUP_GET_DEVICE_FD, bdf)) < 0)
			r = -errno;
		else if (!(gs.flags & VFIO_GROUP_FLAGS_VIABLE))
			r = -EPERM;
		else
			return g;
		if (vf_grp[h] < 0)
			vf_grp[h] = 0;
		if (vf_dev[h] < 0)
			vf_dev[h] = 0;
	}
	vfio_close_slot(h);
	return r;
}

/* VFIO_IOMMU_MAP_DMA: vfio_pin_pages_remote() pins the range FOLL_WRITE|FOLL_LONGTERM and maps it */
static long w_vfio_map(int h, unsigned long iova, unsigned long vaddr, unsigned long size, int prot)
{
	if (vf_ct[h] <= 0)
		return -EBADF;
	struct vfio_iommu_type1_dma_map m = { .argsz = sizeof(m), .flags = 0, .vaddr = vaddr, .iova = iova, .size = size };
	if (prot & 1)
		m.flags |= VFIO_DMA_MAP_FLAG_READ;
	if (prot & 2)
		m.flags |= VFIO_DMA_MAP_FLAG_WRITE;
	return ioctl(vf_ct[h], VFIO_IOMMU_MAP_DMA, &m) ? -errno : 0;
}

/* VFIO_IOMMU_UNMAP_DMA: the bytes unmapped (the kernel writes them back into .size), or -errno */
static long w_vfio_unmap(int h, unsigned long iova, unsigned long size, int all)
{
	if (vf_ct[h] <= 0)
		return -EBADF;
	struct vfio_iommu_type1_dma_unmap u = { .argsz = sizeof(u), .flags = all ? VFIO_DMA_UNMAP_FLAG_ALL : 0, .iova = iova, .size = size };
	return ioctl(vf_ct[h], VFIO_IOMMU_UNMAP_DMA, &u) ? -errno : (long)u.size;
}

/*
 * VFIO_IOMMU_GET_INFO with its capability chain: the IOVA ranges (VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) go
 * into the shared page for the controller (at most 16); returns how many, *avail the DMA_AVAIL capability's
 * count (-1 without it), or -errno.
 */
#define INFO_SLOT 64 /* longs into the shared page: after pin_max's progress words */
static long w_vfio_info(int h, long long *avail)
{
	if (vf_ct[h] <= 0)
		return -EBADF;
	static char buf[4096];
	struct vfio_iommu_type1_info *in = (void *)buf;
	memset(buf, 0, sizeof(buf));
	in->argsz = sizeof(buf);
	if (ioctl(vf_ct[h], VFIO_IOMMU_GET_INFO, in))
		return -errno;
	long n = 0;
	*avail = -1;
	for (uint32_t off = (in->flags & VFIO_IOMMU_INFO_CAPS) ? in->cap_offset : 0; off && off + 8 <= sizeof(buf);) {
		struct vfio_info_cap_header *c = (void *)(buf + off);
		if (c->id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
			struct vfio_iommu_type1_info_cap_iova_range *r = (void *)c;
			for (uint32_t i = 0; i < r->nr_iovas && n < 16; i++, n++)
				if (pinmax_done) {
					pinmax_done[INFO_SLOT + 2 * n] = (long)r->iova_ranges[i].start;
					pinmax_done[INFO_SLOT + 2 * n + 1] = (long)r->iova_ranges[i].end;
				}
		} else if (c->id == VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL)
			*avail = ((struct vfio_iommu_type1_info_dma_avail *)c)->avail;
		off = c->next;
	}
	return n;
}

/* close the device, the group and the container: vfio_iommu_type1_release() unmaps and unpins what is left */
static long w_vfio_close(int h)
{
	if (vf_ct[h] <= 0)
		return -EBADF;
	vfio_close_slot(h);
	return 0;
}

/* ---------- RDMA: rdma_rxe on the guest's NIC, memory regions through /dev/infiniband/uverbs0 ---------- */

#define MAXMR 256
static int rd_fd[MAXH], rd_async[MAXH], rd_nmr[MAXH];
static uint32_t rd_pd[MAXH];
static int64_t rd_mr[MAXH][MAXMR]; /* the kernel's mr_handle by the device's MR number; -1 once deregistered */

static void nla_str(char *buf, size_t *len, int type, const char *v)
{
	struct nlattr *a = (struct nlattr *)(buf + *len);
	a->nla_type = type;
	a->nla_len = NLA_HDRLEN + strlen(v) + 1;
	memcpy(buf + *len + NLA_HDRLEN, v, strlen(v) + 1);
	*len += NLA_ALIGN(a->nla_len);
}

/*
 * rdma link add rxe0 type rxe netdev NDEV: RDMA_NLDEV_CMD_NEWLINK over NETLINK_RDMA (nldev_newlink(), what
 * iproute2 sends), after bringing NDEV up. 0 or the kernel's -errno.
 */
static int rxe_link(const char *ndev)
{
	int ifs = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (ifs >= 0) {
		struct ifreq ifr = { 0 };
		snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ndev);
		if (!ioctl(ifs, SIOCGIFFLAGS, &ifr)) {
			ifr.ifr_flags |= IFF_UP;
			ioctl(ifs, SIOCSIFFLAGS, &ifr);
		}
		close(ifs);
	}
	int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_RDMA);
	if (s < 0)
		return -errno;
	char buf[512] = { 0 };
	struct nlmsghdr *h = (struct nlmsghdr *)buf;
	size_t len = NLMSG_HDRLEN;
	nla_str(buf, &len, RDMA_NLDEV_ATTR_DEV_NAME, "rxe0");
	nla_str(buf, &len, RDMA_NLDEV_ATTR_LINK_TYPE, "rxe");
	nla_str(buf, &len, RDMA_NLDEV_ATTR_NDEV_NAME, ndev);
	h->nlmsg_len = len;
	h->nlmsg_type = RDMA_NL_GET_TYPE(RDMA_NL_NLDEV, RDMA_NLDEV_CMD_NEWLINK);
	h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	h->nlmsg_seq = 1;
	int r = -EIO;
	if (send(s, buf, len, 0) != (ssize_t)len)
		r = -errno;
	else {
		ssize_t k = recv(s, buf, sizeof(buf), 0);
		h = (struct nlmsghdr *)buf;
		if (k >= (ssize_t)(NLMSG_HDRLEN + sizeof(struct nlmsgerr)) && h->nlmsg_type == NLMSG_ERROR)
			r = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
	}
	close(s);
	return r;
}

/* one legacy uverbs command: write() of the header and the command, the response through cmd.response */
static long uverbs_cmd(int fd, uint32_t command, void *cmd, size_t len, size_t resp_len)
{
	char b[256];
	struct ib_uverbs_cmd_hdr hdr = { command, (uint16_t)((sizeof(hdr) + len) / 4), (uint16_t)(resp_len / 4) };
	memcpy(b, &hdr, sizeof(hdr));
	memcpy(b + sizeof(hdr), cmd, len);
	return write(fd, b, sizeof(hdr) + len) < 0 ? -errno : 0;
}

static void rdma_close_slot(int h)
{
	if (rd_async[h] > 0)
		close(rd_async[h]);
	if (rd_fd[h] > 0)
		close(rd_fd[h]); /* ib_uverbs_close(): every MR deregistered, its umem released */
	rd_fd[h] = rd_async[h] = rd_nmr[h] = 0;
}

/* open: /dev/infiniband/uverbs0, IB_USER_VERBS_CMD_GET_CONTEXT, IB_USER_VERBS_CMD_ALLOC_PD. 0 or -errno */
static long w_rdma_open(int h)
{
	int fd = open("/dev/infiniband/uverbs0", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rd_fd[h] = fd;
	struct ib_uverbs_get_context_resp cr;
	struct ib_uverbs_get_context gc = { .response = (uintptr_t)&cr };
	long r = uverbs_cmd(fd, IB_USER_VERBS_CMD_GET_CONTEXT, &gc, sizeof(gc), sizeof(cr));
	if (!r) {
		rd_async[h] = (int)cr.async_fd;
		struct ib_uverbs_alloc_pd_resp pr;
		struct ib_uverbs_alloc_pd ap = { .response = (uintptr_t)&pr };
		r = uverbs_cmd(fd, IB_USER_VERBS_CMD_ALLOC_PD, &ap, sizeof(ap), sizeof(pr));
		if (!r) {
			rd_pd[h] = pr.pd_handle;
			return 0;
		}
	}
	rdma_close_slot(h);
	return r;
}

/*
 * IB_USER_VERBS_CMD_REG_MR: ib_umem_get() charges mm->pinned_vm and pins FOLL_LONGTERM (|FOLL_WRITE when
 * writable). rc: the device's MR number (0, 1, ... in order, as the model numbers them), or -errno; *keys:
 * the lkey.
 */
static long w_rdma_reg(int h, unsigned long vaddr, unsigned long len, unsigned long hca_va, int access, long long *keys)
{
	if (rd_fd[h] <= 0)
		return -EBADF;
	if (rd_nmr[h] >= MAXMR)
		return -ENOSPC;
	struct ib_uverbs_reg_mr_resp mr;
	struct ib_uverbs_reg_mr c = { .response = (uintptr_t)&mr, .start = vaddr, .length = len, .hca_va = hca_va,
				      .pd_handle = rd_pd[h], .access_flags = (uint32_t)access };
	long r = uverbs_cmd(rd_fd[h], IB_USER_VERBS_CMD_REG_MR, &c, sizeof(c), sizeof(mr));
	if (r)
		return r;
	*keys = mr.lkey; /* rxe: the rkey is the lkey when remote access is asked for, else 0 */
	rd_mr[h][rd_nmr[h]] = mr.mr_handle;
	return rd_nmr[h]++;
}

/* IB_USER_VERBS_CMD_DEREG_MR of MR number n; a number naming no live MR sends a handle no object has */
static long w_rdma_dereg(int h, long n)
{
	if (rd_fd[h] <= 0)
		return -EBADF;
	int live = n >= 0 && n < rd_nmr[h] && rd_mr[h][n] >= 0;
	struct ib_uverbs_dereg_mr c = { .mr_handle = live ? (uint32_t)rd_mr[h][n] : 0xffffffffu };
	long r = uverbs_cmd(rd_fd[h], IB_USER_VERBS_CMD_DEREG_MR, &c, sizeof(c), 0);
	if (!r && live)
		rd_mr[h][n] = -1;
	return r;
}

static long w_rdma_close(int h)
{
	if (rd_fd[h] <= 0)
		return -EBADF;
	rdma_close_slot(h);
	return 0;
}

static void open_fifos(int id, int *cmd, int *rep, int worker)
{
	char c[300], r[300];
	snprintf(c, sizeof(c), "%s/%d.cmd", fifo_dir, id);
	snprintf(r, sizeof(r), "%s/%d.rep", fifo_dir, id);
	if (worker) {
		*cmd = open(c, O_RDONLY);
		*rep = open(r, O_WRONLY);
	} else {
		*cmd = open(c, O_WRONLY);
		*rep = open(r, O_RDONLY);
	}
}

static void make_fifos(int id)
{
	char c[300], r[300];
	snprintf(c, sizeof(c), "%s/%d.cmd", fifo_dir, id);
	snprintf(r, sizeof(r), "%s/%d.rep", fifo_dir, id);
	unlink(c);
	unlink(r);
	mkfifo(c, 0600);
	mkfifo(r, 0600);
}

static void worker_loop(int id);

/* a reply line "rc aux" */
static void reply(int fd, long long rc, long long aux)
{
	char b[64];
	int n = snprintf(b, sizeof(b), "%lld %lld\n", rc, aux);
	if (write(fd, b, n) != n)
		_exit(98);
}

static unsigned long mmap_aligned(unsigned long len, int prot, int flags)
{
	/* lengths of a PMD or more start PMD-aligned, as in the model's get_unmapped_area (and 6.7+'s for anon) */
	if (len < PMD_SIZE)
		return (unsigned long)mmap(NULL, len, prot, flags, -1, 0);
	char *r = mmap(NULL, len + PMD_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r == MAP_FAILED)
		return (unsigned long)MAP_FAILED;
	unsigned long a = ((unsigned long)r + PMD_SIZE - 1) & ~(PMD_SIZE - 1);
	if (a > (unsigned long)r)
		munmap(r, a - (unsigned long)r);
	if ((unsigned long)r + len + PMD_SIZE > a + len)
		munmap((char *)(a + len), (unsigned long)r + len + PMD_SIZE - (a + len));
	void *m = mmap((void *)a, len, prot, flags | MAP_FIXED, -1, 0);
	if (m == MAP_FAILED)
		munmap((void *)a, len);
	return (unsigned long)m;
}

static void worker_cmd(int id, int rep, char **av, int ac)
{
	const char *op = av[0];
	unsigned long addr = ac > 1 ? strtoul(av[1], NULL, 0) : 0;
	unsigned long len = ac > 2 ? strtoul(av[2], NULL, 0) : 0;
	if (!strcmp(op, "mmap")) { /* mmap FIXED LEN PROT SHARED HUGETLB ADVICE POPULATE */
		int prot = atoi(av[3]), shared = atoi(av[4]), huge = atoi(av[5]), adv = atoi(av[6]), pop = atoi(av[7]);
		int flags = (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS | (huge ? MAP_HUGETLB : 0);
		unsigned long a = addr ? (unsigned long)mmap((void *)addr, len, prot, flags | MAP_FIXED_NOREPLACE, -1, 0)
				       : mmap_aligned(len, prot, flags);
		if ((void *)a == MAP_FAILED) {
			reply(rep, -errno, 0);
			return;
		}
		if (adv && madvise((void *)a, len, adv))
			adv = 0;
		if (pop && madvise((void *)a, len, (prot & PROT_WRITE) ? MADV_POPULATE_WRITE : MADV_POPULATE_READ)) {
			reply(rep, -errno, a);
			return;
		}
		reply(rep, 0, a);
	} else if (!strcmp(op, "touch")) { /* touch ADDR NPAGES WRITE HASVALUE VALUE */
		int write = atoi(av[3]), hasv = atoi(av[4]);
		uint32_t v = (uint32_t)strtoul(av[5], NULL, 0);
		for (unsigned long i = 0; i < len; i++) {
			unsigned long a = addr + i * page_size;
			long r = access_word(a, write, hasv ? v + (uint32_t)i : (uint32_t)(a / page_size));
			if (r < 0) {
				reply(rep, r, a);
				return;
			}
		}
		reply(rep, 0, 0);
	} else if (!strcmp(op, "write") || !strcmp(op, "read")) { /* write ADDR VALUE | read ADDR */
		long r = access_word(addr, op[0] == 'w', (uint32_t)len);
		reply(rep, op[0] == 'w' && r >= 0 ? 0 : r, 0); /* a store's rc is 0 (docs/scenarios.md), a load's the word */
	} else if (!strcmp(op, "munmap")) {
		reply(rep, munmap((void *)addr, len) ? -errno : 0, 0);
	} else if (!strcmp(op, "mprotect")) {
		reply(rep, mprotect((void *)addr, len, atoi(av[3])) ? -errno : 0, 0);
	} else if (!strcmp(op, "madvise")) {
		madvise_sigbus = 0;
		in_madvise = 1;
		long rc = madvise((void *)addr, len, atoi(av[3])) ? -errno : 0;
		in_madvise = 0;
		reply(rep, rc, madvise_sigbus);
	} else if (!strcmp(op, "mlock")) { /* mlock ADDR LEN FLAGS: mlock2(), FLAGS 1 = MLOCK_ONFAULT */
		reply(rep, syscall(SYS_mlock2, addr, len, atoi(av[3])) ? -errno : 0, 0);
	} else if (!strcmp(op, "munlock")) {
		reply(rep, munlock((void *)addr, len) ? -errno : 0, 0);
	} else if (!strcmp(op, "fork")) { /* fork CHILDID NAME */
		int child = (int)addr;
		pid_t pid = fork();
		if (pid == 0) {
			close(procs[id].cmd);
			close(rep);
			for (int h = 0; h < MAXH; h++) { /* pins stay with the process that took them */
				if (ring_fd[h] > 0)
					close(ring_fd[h]);
				if (hold_pipe[h][0] > 0) {
					close(hold_pipe[h][0]);
					close(hold_pipe[h][1]);
				}
				ring_fd[h] = hold_pipe[h][0] = hold_pipe[h][1] = 0;
				vfio_close_slot(h);
				rdma_close_slot(h);
			}
			prctl(PR_SET_NAME, av[2]);
			worker_loop(child);
		}
		reply(rep, pid < 0 ? -errno : 0, pid);
	} else if (!strcmp(op, "exit")) {
		reply(rep, 0, 0);
		_exit(0);
	} else if (!strcmp(op, "pin")) { /* pin H ADDR LEN */
		reply(rep, w_pin((int)addr, len, strtoul(av[3], NULL, 0)), 0);
	} else if (!strcmp(op, "pinmax")) { /* pinmax H ADDR LEN CHUNK */
		long long last;
		long r = w_pinmax((int)addr, len, strtoul(av[3], NULL, 0), strtoul(av[4], NULL, 0), &last);
		reply(rep, r, last);
	} else if (!strcmp(op, "hold")) {
		reply(rep, w_hold((int)addr, len, strtoul(av[3], NULL, 0)), 0);
	} else if (!strcmp(op, "unpin")) {
		reply(rep, w_unpin((int)addr), 0);
	} else if (!strcmp(op, "vfio_open")) { /* vfio_open H */
		long r = w_vfio_open((int)addr);
		reply(rep, r < 0 ? r : 0, r < 0 ? 0 : r);
	} else if (!strcmp(op, "vfio_map")) { /* vfio_map H IOVA VADDR SIZE PROT */
		reply(rep, w_vfio_map((int)addr, len, strtoul(av[3], NULL, 0), strtoul(av[4], NULL, 0), atoi(av[5])), 0);
	} else if (!strcmp(op, "vfio_info")) { /* vfio_info H */
		long long avail;
		long r = w_vfio_info((int)addr, &avail);
		reply(rep, r, avail);
	} else if (!strcmp(op, "vfio_unmap")) { /* vfio_unmap H IOVA SIZE ALL */
		reply(rep, w_vfio_unmap((int)addr, len, strtoul(av[3], NULL, 0), atoi(av[4])), 0);
	} else if (!strcmp(op, "vfio_close")) { /* vfio_close H */
		reply(rep, w_vfio_close((int)addr), 0);
	} else if (!strcmp(op, "uring_open")) { /* uring_open H */
		reply(rep, w_uring_open((int)addr), 0);
	} else if (!strcmp(op, "uring_reg")) { /* uring_reg H N BASE LEN ... */
		int n = (int)len;
		reply(rep, n < 0 || n > 36 || ac < 3 + 2 * n ? -EINVAL : w_uring_reg((int)addr, n, av + 3), 0);
	} else if (!strcmp(op, "uring_unreg")) { /* uring_unreg H */
		long r = ring_fd[addr] > 0 ? syscall(__NR_io_uring_register, ring_fd[addr], IORING_UNREGISTER_BUFFERS, NULL, 0) : -1;
		reply(rep, ring_fd[addr] <= 0 ? -EBADF : r < 0 ? -errno : 0, 0);
	} else if (!strcmp(op, "uring_close")) { /* uring_close H */
		if (ring_fd[addr] > 0)
			close(ring_fd[addr]);
		reply(rep, ring_fd[addr] > 0 ? 0 : -EBADF, 0);
		ring_fd[addr] = 0;
	} else if (!strcmp(op, "rdma_open")) { /* rdma_open H */
		reply(rep, w_rdma_open((int)addr), 0);
	} else if (!strcmp(op, "rdma_reg")) { /* rdma_reg H VADDR LEN HCA_VA ACCESS */
		long long keys = 0;
		long r = w_rdma_reg((int)addr, len, strtoul(av[3], NULL, 0), strtoul(av[4], NULL, 0), atoi(av[5]), &keys);
		reply(rep, r, keys);
	} else if (!strcmp(op, "rdma_dereg")) { /* rdma_dereg H N */
		reply(rep, w_rdma_dereg((int)addr, (long)len), 0);
	} else if (!strcmp(op, "rdma_close")) { /* rdma_close H */
		reply(rep, w_rdma_close((int)addr), 0);
	} else
		reply(rep, -ENOSYS, 0);
}

static void worker_loop(int id)
{
	int cmd, rep;
	open_fifos(id, &cmd, &rep, 1);
	procs[id].cmd = cmd;
	FILE *in = fdopen(cmd, "r");
	char line[LINE];
	while (fgets(line, sizeof(line), in)) {
		char *av[80];
		int ac = 0;
		for (char *t = strtok(line, " \n"); t && ac < 80; t = strtok(NULL, " \n"))
			av[ac++] = t;
		if (ac)
			worker_cmd(id, rep, av, ac);
	}
	_exit(0);
}

/* send one command to a worker; returns 0 with rc/aux, or -1 when the worker died (OOM kill, signal) */
static int call(int p, long long *rc, long long *aux, const char *fmt, ...)
{
	char b[LINE];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(b, sizeof(b) - 1, fmt, ap);
	va_end(ap);
	b[n++] = '\n';
	signal(SIGPIPE, SIG_IGN);
	if (write(procs[p].cmd, b, n) != n)
		return -1;
	char r[128];
	size_t got = 0;
	while (got < sizeof(r) - 1) {
		ssize_t k = read(procs[p].rep, r + got, sizeof(r) - 1 - got);
		if (k <= 0)
			return -1;
		got += k;
		if (memchr(r, '\n', got))
			break;
	}
	r[got] = 0;
	if (sscanf(r, "%lld %lld", rc, aux) != 2)
		return -1;
	return 0;
}

static int start_worker(int id, const char *name, long long memlock, int cap, int oom)
{
	make_fifos(id);
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		prctl(PR_SET_NAME, name);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		char b[32];
		snprintf(b, sizeof(b), "%d", oom);
		write_file("/proc/self/oom_score_adj", b);
		if (memlock != -2) {
			struct rlimit rl = { memlock < 0 ? RLIM_INFINITY : (rlim_t)memlock, memlock < 0 ? RLIM_INFINITY : (rlim_t)memlock };
			setrlimit(RLIMIT_MEMLOCK, &rl);
			if (!cap)
				drop_cap_ipc_lock();
		}
		worker_loop(id);
	}
	snprintf(procs[id].name, sizeof(procs[id].name), "%s", name);
	procs[id].pid = pid;
	procs[id].dead = 0;
	open_fifos(id, &procs[id].cmd, &procs[id].rep, 0);
	return 0;
}

static void reap(void)
{
	int st;
	pid_t pid;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
		for (int i = 0; i < MAXP; i++)
			if (procs[i].pid == pid && !procs[i].dead) {
				procs[i].dead = WIFSIGNALED(st) ? 2 : 3;
				procs[i].killed_at = cur_step;
			}
}

/* ---------- census: what a memory block's pages hold (/proc/kpageflags) ---------- */

static void census(int b)
{
	read_blocks();
	int kf = open("/proc/kpageflags", O_RDONLY);
	if (kf < 0 || b < 0 || block_pages <= 0) {
		jraw(",\"census_error\":%d", kf < 0 ? -errno : -EINVAL);
		if (kf >= 0)
			close(kf);
		return;
	}
	long anon = 0, shmem = 0, file = 0, reserved = 0, runs[32], nruns = 0, prev = 0;
	uint64_t fl[512];
	for (long i = 0; i < block_pages; i += 512) {
		ssize_t r = pread(kf, fl, sizeof(fl), (off_t)((b * block_pages + i) * 8));
		if (r <= 0)
			break;
		for (long j = 0; j < r / 8; j++) {
			uint64_t f = fl[j];
			if (f & (1ULL << 5)) { /* KPF_LRU */
				if (f & (1ULL << 12)) anon++; /* KPF_ANON */
				else if (f & (1ULL << 14)) shmem++; /* KPF_SWAPBACKED */
				else file++;
			} else if (f & (1ULL << 32)) /* KPF_RESERVED */
				reserved++;
			long rsv = (f & (1ULL << 32)) != 0, off = i + j;
			if (rsv && !prev && nruns < 16) /* the reserved runs: where memblock's allocations lie */
				runs[2 * nruns] = off, runs[2 * nruns + 1] = 0, nruns++;
			if (rsv && nruns && runs[2 * (nruns - 1)] + runs[2 * (nruns - 1) + 1] == off)
				runs[2 * (nruns - 1) + 1]++;
			prev = rsv;
		}
	}
	close(kf);
	jraw(",\"census\":{\"anon\":%ld,\"shmem\":%ld,\"file\":%ld,\"reserved\":%ld,\"runs\":[", anon, shmem, file, reserved);
	for (long k = 0; k < nruns; k++)
		jraw("%s[%ld,%ld]", k ? "," : "", runs[2 * k], runs[2 * k + 1]);
	jraw("]}");
}

/* ---------- residency: where a range's pages are, by zone ---------- */

static void residency(int p, unsigned long addr, unsigned long len)
{
	char path[64];
	long npages = len / page_size;
	long byzone[MAXZ] = { 0 }, present = 0, zero = 0, thp = 0, unknown = 0, swapped = 0;
	snprintf(path, sizeof(path), "/proc/%d/pagemap", procs[p].pid);
	int fd = open(path, O_RDONLY), kf = open("/proc/kpageflags", O_RDONLY);
	if (fd < 0) {
		jraw(",\"res\":{\"error\":%d}", -errno);
		if (kf >= 0)
			close(kf);
		return;
	}
	uint64_t ent[512], kcache[64], kbase = 0, kn = 0;
	for (long i = 0; i < npages; i += 512) {
		long n = npages - i < 512 ? npages - i : 512;
		ssize_t r = pread(fd, ent, n * 8, (off_t)((addr / page_size + i) * 8));
		if (r != n * 8)
			break;
		for (long j = 0; j < n; j++) {
			uint64_t e = ent[j];
			if (e & (1ULL << 62))
				swapped++; /* swap or migration entry */
			if (!(e & (1ULL << 63)))
				continue;
			uint64_t pfn = e & ((1ULL << 55) - 1);
			uint64_t fl = 0;
			if (kf >= 0 && pfn) {
				if (pfn < kbase || pfn >= kbase + kn) { /* 64 flags words at a time: pfns mostly run */
					ssize_t k = pread(kf, kcache, sizeof(kcache), (off_t)(pfn * 8));
					kbase = pfn;
					kn = k > 0 ? (uint64_t)k / 8 : 0;
				}
				if (pfn < kbase + kn)
					fl = kcache[pfn - kbase];
			}
			if (fl & (1ULL << KPF_ZERO_PAGE)) {
				zero++;
				continue;
			}
			present++;
			if (fl & (1ULL << KPF_THP))
				thp++;
			int z = pfn ? pfn_zone((long)pfn) : -1;
			if (z < 0)
				unknown++;
			else
				byzone[z]++;
		}
	}
	close(fd);
	if (kf >= 0)
		close(kf);
	jraw(",\"res\":{\"pages\":%ld,\"present\":%ld,\"zero\":%ld,\"thp\":%ld,\"unknown\":%ld,\"swapped\":%ld,\"zones\":{",
	     npages, present, zero, thp, unknown, swapped);
	for (int z = 0, first = 1; z < nzones; z++)
		if (byzone[z]) {
			jraw("%s\"%s\":%ld", first ? "" : ",", zones[z].name, byzone[z]);
			first = 0;
		}
	jraw("}}");
}

static void proc_status(int p)
{
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/%d/status", procs[p].pid);
	if (read_file(path, buf, sizeof(buf)) <= 0)
		return;
	char *lck = strstr(buf, "VmLck:"), *pin = strstr(buf, "VmPin:");
	if (lck && pin)
		jraw(",\"vm\":{\"VmLck\":%ld,\"VmPin\":%ld}", atol(lck + 6), atol(pin + 6));
}

/* ---------- memory block state (online/offline), the offline with a time limit ---------- */

/* the signal that ended the last block_store()'s writer inside its write, or 0 */
static int writer_killed;

static long block_store(int b, const char *what, long limit_ms)
{
	char p[128];
	block_path(p, sizeof(p), b, "state");
	int pfd[2];
	if (pipe(pfd))
		return -errno;
	pid_t pid = fork();
	if (pid == 0) {
		/* offline_pages() retries while migration fails; a signal ends it with -EINTR ("signal backoff") */
		struct sigaction sa = { 0 };
		sa.sa_handler = alarm_noop;
		sigaction(SIGALRM, &sa, NULL); /* no SA_RESTART */
		if (limit_ms > 0) {
			struct itimerval it = { { 0, 0 }, { limit_ms / 1000, (limit_ms % 1000) * 1000 } };
			setitimer(ITIMER_REAL, &it, NULL);
		}
		long r = write_file(p, what);
		(void)!write(pfd[1], &r, sizeof(r));
		_exit(0);
	}
	close(pfd[1]);
	if (pid < 0) {
		close(pfd[0]);
		return -errno;
	}
	long r = -ETIMEDOUT;
	struct pollfd pf = { pfd[0], POLLIN, 0 };
	/* the child's write can sleep uninterruptibly: give it the limit and 10 s more, then report it stuck */
	int died = poll(&pf, 1, (int)(limit_ms > 0 ? limit_ms + 10000 : -1)) == 1 && read(pfd[0], &r, sizeof(r)) != sizeof(r);
	if (died)
		r = -EIO;
	close(pfd[0]);
	if (r != -ETIMEDOUT) {
		int st = 0;
		waitpid(pid, &st, 0);
		/* killed inside the write without a word: an oops (die() kills the task), the log says why */
		if (died && WIFSIGNALED(st))
			writer_killed = WTERMSIG(st);
	}
	return r;
}

/* ---------- the step loop ---------- */

static long long mapaddr(const char *a, int *ok)
{
	/* "M:OFF": mapping M plus a byte offset */
	int m = atoi(a);
	const char *c = strchr(a, ':');
	if (m < 0 || m >= MAXM || !maps[m].addr) {
		*ok = 0;
		return 0;
	}
	*ok = 1;
	return (long long)maps[m].addr + (c ? strtoll(c + 1, NULL, 0) : 0);
}

static int run_step(int step, char **av, int ac)
{
	const char *op = av[1];
	int p = (int)argll(av, ac, "p", -1), ok = 1;
	long long rc = 0, aux = 0, addr = 0, len = argll(av, ac, "len", 0);
	const char *a = arg(av, ac, "a");
	int res = 0;
	if (a)
		addr = mapaddr(a, &ok);
	if (!ok) {
		jraw("{\"step\":%d,\"op\":\"%s\",\"error\":\"unknown mapping %s\"", step, op, a);
		return 0;
	}
	jraw("{\"step\":%d,\"op\":\"%s\"", step, op);
	if (p >= 0 && strcmp(op, "spawn")) {
		if (p >= MAXP || !procs[p].pid) {
			jraw(",\"error\":\"no process %d\"", p);
			return 0;
		}
		if (procs[p].dead) {
			jraw(",\"rc\":%d,\"gone\":%d", -ESRCH, procs[p].killed_at);
			return 0;
		}
	}
	int died = 0;
#define CALL(...) do { if (call(p, &rc, &aux, __VA_ARGS__)) died = 1; } while (0)
	if (!strcmp(op, "spawn")) {
		rc = start_worker(p, arg(av, ac, "name") ?: "proc", argll(av, ac, "memlock", -2), (int)argll(av, ac, "cap", 1),
				  (int)argll(av, ac, "oom", 0));
		aux = procs[p].pid;
	} else if (!strcmp(op, "mmap")) {
		int m = (int)argll(av, ac, "m", -1);
		const char *at = arg(av, ac, "at");
		long long fixed = 0;
		if (at && (fixed = mapaddr(at, &ok), !ok)) {
			jraw(",\"error\":\"unknown mapping %s\"", at);
			return 0;
		}
		CALL("mmap %lld %lld %lld %lld %lld %lld %lld", fixed, len, argll(av, ac, "prot", 3), argll(av, ac, "shared", 0),
		     argll(av, ac, "hugetlb", 0), argll(av, ac, "advice", 0), argll(av, ac, "populate", 0));
		if (!died && aux && m >= 0 && m < MAXM) {
			maps[m].addr = aux;
			maps[m].len = len;
			maps[m].proc = p;
			addr = aux;
			res = 1;
		}
	} else if (!strcmp(op, "touch")) {
		const char *v = arg(av, ac, "value");
		CALL("touch %lld %lld %lld %d %s", addr, len / page_size, argll(av, ac, "write", 1), v != NULL, v ? v : "0");
		res = 1;
	} else if (!strcmp(op, "write")) {
		CALL("write %lld %s", addr, arg(av, ac, "value") ?: "0");
	} else if (!strcmp(op, "read")) {
		CALL("read %lld", addr);
	} else if (!strcmp(op, "munmap")) {
		CALL("munmap %lld %lld", addr, len);
	} else if (!strcmp(op, "mprotect")) {
		CALL("mprotect %lld %lld %lld", addr, len, argll(av, ac, "prot", 3));
	} else if (!strcmp(op, "madvise")) {
		CALL("madvise %lld %lld %lld", addr, len, argll(av, ac, "advice", 0));
		res = 1;
	} else if (!strcmp(op, "mlock")) {
		CALL("mlock %lld %lld %lld", addr, len, argll(av, ac, "onfault", 0));
		res = 1;
	} else if (!strcmp(op, "munlock")) {
		CALL("munlock %lld %lld", addr, len);
	} else if (!strcmp(op, "fork")) {
		int c = (int)argll(av, ac, "c", -1);
		if (c < 0 || c >= MAXP) {
			jraw(",\"error\":\"bad child\"");
			return 0;
		}
		make_fifos(c);
		CALL("fork %d %s", c, arg(av, ac, "name") ?: "child");
		if (!died && rc == 0) {
			snprintf(procs[c].name, sizeof(procs[c].name), "%s", arg(av, ac, "name") ?: "child");
			procs[c].pid = (pid_t)aux;
			procs[c].dead = 0;
			open_fifos(c, &procs[c].cmd, &procs[c].rep, 0);
		}
	} else if (!strcmp(op, "exit")) {
		CALL("exit");
		if (!died) {
			/* EOF on the reply FIFO: exit_files() ran, and exit_mm() before it */
			char c;
			while (read(procs[p].rep, &c, 1) > 0)
				;
			waitpid(procs[p].pid, NULL, 0);
			close(procs[p].cmd);
			close(procs[p].rep);
			procs[p].dead = 3;
			procs[p].killed_at = step;
		}
	} else if (!strcmp(op, "pin") || !strcmp(op, "hold")) {
		int h = (int)argll(av, ac, "h", -1);
		CALL("%s %d %lld %lld", op, h, addr, len);
		if (!died && rc > 0 && h >= 0 && h < MAXH)
			held_proc[h] = p;
		res = 1;
	} else if (!strcmp(op, "pinmax")) {
		int h = (int)argll(av, ac, "h", -1);
		CALL("pinmax %d %lld %lld %lld", h, addr, len, argll(av, ac, "chunk", 0));
		if (!died && rc >= 0 && h >= 0 && h < MAXH)
			held_proc[h] = p;
		if (died && pinmax_done && h >= 0 && h < MAXH)
			jraw(",\"pinned\":%ld", pinmax_done[h]); /* the chunks registered before the kill */
		if (!died && rc > 0 && p >= 0 && !procs[p].dead)
			residency(p, (unsigned long)addr, (unsigned long)rc * page_size);
	} else if (!strcmp(op, "unpin")) {
		int h = (int)argll(av, ac, "h", -1);
		p = h >= 0 && h < MAXH ? held_proc[h] : -1;
		if (p < 0 && argll(av, ac, "ifp", 0))
			aux = -1; /* if_pinned: the pin failed, nothing to do */
		else if (p < 0)
			rc = -ENOENT;
		else if (procs[p].dead)
			rc = -ESRCH;
		else
			CALL("unpin %d", h);
		if (!died && p >= 0 && rc == 0)
			held_proc[h] = -1;
	} else if (!strncmp(op, "vfio_", 5)) {
		/* a VFIO container held in slot h of process p: vfio_open, vfio_map, vfio_unmap, vfio_close */
		int h = (int)argll(av, ac, "h", -1);
		if (h < 0 || h >= MAXH) {
			jraw(",\"error\":\"bad slot\"");
			return 0;
		}
		if (!strcmp(op, "vfio_open"))
			CALL("vfio_open %d", h);
		else if (!strcmp(op, "vfio_map")) {
			CALL("vfio_map %d %lld %lld %lld %lld", h, argll(av, ac, "iova", 0), addr, len, argll(av, ac, "prot", 3));
			res = 1;
		} else if (!strcmp(op, "vfio_unmap"))
			CALL("vfio_unmap %d %lld %lld %lld", h, argll(av, ac, "iova", 0), len, argll(av, ac, "all", 0));
		else if (!strcmp(op, "vfio_info")) {
			CALL("vfio_info %d", h);
			if (!died && rc >= 0 && pinmax_done) { /* the ranges the worker left in the shared page */
				jraw(",\"iova\":[");
				for (long i = 0; i < rc; i++)
					jraw("%s[\"0x%lx\",\"0x%lx\"]", i ? "," : "", (unsigned long)pinmax_done[INFO_SLOT + 2 * i],
					     (unsigned long)pinmax_done[INFO_SLOT + 2 * i + 1]);
				jraw("]");
			}
		}
		else if (!strcmp(op, "vfio_close"))
			CALL("vfio_close %d", h);
		else {
			jraw(",\"error\":\"unknown op %s\"", op);
			return 0;
		}
	} else if (!strncmp(op, "uring_", 6)) {
		/* io-uring-fixed: a ring in slot h of process p; uring_reg's iov=M:OFF:LEN,... ("-:0:0" a sparse slot) */
		int h = (int)argll(av, ac, "h", -1);
		if (h < 0 || h >= MAXH) {
			jraw(",\"error\":\"bad slot\"");
			return 0;
		}
		if (!strcmp(op, "uring_reg")) {
			char lst[LINE] = "", iv[LINE];
			int n = 0;
			size_t k = 0;
			snprintf(iv, sizeof(iv), "%s", arg(av, ac, "iov") ?: "");
			for (char *save, *t = strtok_r(iv, ",", &save); t; t = strtok_r(NULL, ",", &save), n++) {
				char *l = strrchr(t, ':');
				unsigned long long b = 0, bl = l ? strtoull(l + 1, NULL, 0) : 0;
				if (t[0] != '-' && (b = (unsigned long long)mapaddr(t, &ok), !ok)) {
					jraw(",\"error\":\"unknown mapping %s\"", t);
					return 0;
				}
				if (n == 0) { /* the first buffer's residency */
					addr = (long long)b;
					len = (long long)bl;
				}
				k += snprintf(lst + k, sizeof(lst) - k, " %llu %llu", b, bl);
			}
			CALL("uring_reg %d %d%s", h, n, lst);
			res = n == 1;
		} else if (!strcmp(op, "uring_open") || !strcmp(op, "uring_unreg") || !strcmp(op, "uring_close"))
			CALL("%s %d", op, h);
		else {
			jraw(",\"error\":\"unknown op %s\"", op);
			return 0;
		}
	} else if (!strncmp(op, "rdma_", 5)) {
		/* an rdma_rxe verbs context with a PD held in slot h of process p */
		int h = (int)argll(av, ac, "h", -1);
		if (h < 0 || h >= MAXH) {
			jraw(",\"error\":\"bad slot\"");
			return 0;
		}
		if (!strcmp(op, "rdma_open"))
			CALL("rdma_open %d", h);
		else if (!strcmp(op, "rdma_reg")) {
			/* hca_va=-1: the MR's iova is its address, as ibv_reg_mr() gives it */
			long long hva = argll(av, ac, "hva", -1);
			CALL("rdma_reg %d %lld %lld %lld %lld", h, addr, len, hva < 0 ? addr : hva, argll(av, ac, "access", 0));
			res = 1;
		} else if (!strcmp(op, "rdma_dereg"))
			CALL("rdma_dereg %d %lld", h, argll(av, ac, "mr", -1));
		else if (!strcmp(op, "rdma_close"))
			CALL("rdma_close %d", h);
		else {
			jraw(",\"error\":\"unknown op %s\"", op);
			return 0;
		}
	} else if (!strcmp(op, "online") || !strcmp(op, "offline")) {
		int b = (int)argll(av, ac, "b", -1);
		const char *type = arg(av, ac, "type") ?: op;
		long t0 = now_ms();
		writer_killed = 0;
		rc = block_store(b, type, op[1] == 'f' ? argll(av, ac, "ms", 10000) : 0);
		jraw(",\"ms\":%ld", now_ms() - t0);
		if (writer_killed)
			jraw(",\"writer_killed\":%d", writer_killed);
		read_zones();
		read_blocks();
	} else if (!strcmp(op, "zones")) {
		read_zones();
		jraw(",");
		json_zones();
	} else if (!strcmp(op, "census")) { /* census b=N: a block's pages by /proc/kpageflags */
		census((int)argll(av, ac, "b", -1));
	} else if (!strcmp(op, "vmstat") || !strcmp(op, "nop")) {
		/* counters go out with every step */
	} else {
		jraw(",\"error\":\"unknown op %s\"", op);
		return 0;
	}
	if (died) {
		reap();
		jraw(",\"died\":true");
		if (!procs[p].dead) {
			procs[p].dead = 2;
			procs[p].killed_at = step;
		}
	} else
		jraw(",\"rc\":%lld,\"aux\":%lld", rc, aux);
	if (addr)
		jraw(",\"addr\":\"0x%llx\"", addr);
	if (res && !died && p >= 0 && !procs[p].dead && addr && len)
		residency(p, (unsigned long)addr, (unsigned long)len);
	if (p >= 0 && !procs[p].dead && procs[p].pid && strcmp(op, "exit"))
		proc_status(p);
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: pinlab-probe PROGRAM [OUT]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	page_size = sysconf(_SC_PAGESIZE);
	FILE *prog = fopen(argv[1], "r");
	if (!prog) {
		fprintf(stderr, "pinlab-probe: %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	out = argc > 2 ? fopen(argv[2], "w") : stdout;
	if (!out) {
		fprintf(stderr, "pinlab-probe: %s: %s\n", argv[2], strerror(errno));
		return 2;
	}
	struct termios t;
	if (!tcgetattr(fileno(out), &t)) { /* a serial port: raw, so JSON goes out byte for byte */
		cfmakeraw(&t);
		tcsetattr(fileno(out), TCSANOW, &t);
	}
	write_file("/proc/self/oom_score_adj", "-1000"); /* the OOM killer takes workers, never the controller */
	void *shared = mmap(NULL, page_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pinmax_done = shared == MAP_FAILED ? NULL : shared;
	if (pinmax_done) /* touched now: read after an OOM kill, a first fault here would need page tables */
		memset(shared, 0, page_size);
	prctl(PR_SET_CHILD_SUBREAPER, 1); /* a forked worker whose parent exits is still ours to reap */
	struct sigaction sa = { 0 };
	sa.sa_handler = on_fault;
	sa.sa_flags = SA_NODEFER;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	snprintf(fifo_dir, sizeof(fifo_dir), "/tmp/pinlab-probe.XXXXXX");
	if (!mkdtemp(fifo_dir)) {
		fprintf(stderr, "pinlab-probe: mkdtemp: %s\n", strerror(errno));
		return 2;
	}
	kmsg = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	if (kmsg >= 0)
		lseek(kmsg, 0, SEEK_END);
	for (int i = 0; i < MAXH; i++)
		held_proc[i] = -1;
	read_zones();
	read_blocks();
	struct utsname u;
	uname(&u);
	char line[LINE];
	int nsteps = 0;
	long t_start = now_ms();
	while (fgets(line, sizeof(line), prog)) {
		chomp(line);
		char *av[64];
		int ac = 0;
		for (char *tk = strtok(line, " "); tk && ac < 64; tk = strtok(NULL, " "))
			av[ac++] = tk;
		if (!ac || av[0][0] == '#')
			continue;
		if (!strcmp(av[0], "counters")) { /* counters NAME,NAME,...: the /proc/vmstat items to follow */
			ncounters = 0;
			for (char *c = strtok(ac > 1 ? av[1] : "", ","); c && ncounters < MAXC; c = strtok(NULL, ","))
				snprintf(cname[ncounters++], sizeof(cname[0]), "%s", c);
			read_counters(cbase);
			char up[64] = "0";
			read_file("/proc/uptime", up, sizeof(up));
			jraw("{\"hello\":\"pinlab-probe\",\"uptime_ms\":%ld,\"counters\":[", (long)(atof(up) * 1000));
			for (int i = 0, first = 1; i < ncounters; i++)
				if (cbase[i] >= 0) {
					jraw("%s\"%s\"", first ? "" : ",", cname[i]);
					first = 0;
				}
			jraw("],\"release\":");
			jstr(u.release);
			jraw(",\"page_size\":%ld,\"thp\":", page_size);
			char thp[128] = "";
			read_file("/sys/kernel/mm/transparent_hugepage/enabled", thp, sizeof(thp));
			chomp(thp);
			jstr(thp);
			jraw(",");
			json_zones();
			jraw("}");
			jflush();
			continue;
		}
		if (!strcmp(av[0], "rxelink")) { /* rxelink NDEV: rdma link add rxe0 type rxe netdev NDEV */
			jraw("{\"rxelink\":%d}", ac > 1 ? rxe_link(av[1]) : -EINVAL);
			jflush();
			continue;
		}
		int step = atoi(av[0]);
		if (ac < 2 || step <= 0)
			continue;
		cur_step = step;
		killed_names[0] = 0;
		long long before[MAXC];
		read_counters(before);
		long t0 = now_ms();
		run_step(step, av, ac);
		jraw(",\"t\":%ld", now_ms() - t0);
		reap();
		read_counters(cstep);
		jraw(",\"d\":{");
		for (int i = 0, first = 1; i < ncounters; i++)
			if (cstep[i] >= 0 && cstep[i] != before[i]) {
				jraw("%s\"%s\":%lld", first ? "" : ",", cname[i], cstep[i] - before[i]);
				first = 0;
			}
		jraw("}");
		kmsg_drain();
		jraw(",\"killed\":[%s]}", killed_names);
		jflush();
		nsteps++;
	}
	read_zones();
	read_blocks();
	read_counters(cstep);
	jraw("{\"end\":%d,\"ms\":%ld,\"vmstat\":{", nsteps, now_ms() - t_start);
	for (int i = 0, first = 1; i < ncounters; i++)
		if (cstep[i] >= 0) {
			jraw("%s\"%s\":%lld", first ? "" : ",", cname[i], cstep[i] - cbase[i]);
			first = 0;
		}
	jraw("},");
	json_zones();
	jraw("}");
	jflush();
	for (int i = 0; i < MAXP; i++)
		if (procs[i].pid && !procs[i].dead)
			kill(procs[i].pid, SIGKILL);
	while (wait(NULL) > 0)
		;
	char c[300];
	for (int i = 0; i < MAXP; i++) {
		snprintf(c, sizeof(c), "%s/%d.cmd", fifo_dir, i);
		unlink(c);
		snprintf(c, sizeof(c), "%s/%d.rep", fifo_dir, i);
		unlink(c);
	}
	rmdir(fifo_dir);
	return 0;
}
