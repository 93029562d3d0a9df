// What `pinlab kernel` needs on the host, installed on first use and cached in .cache/ (git-ignored):
// QEMU and busybox-static from Debian's packages, the probe built with gcc -static, Debian kernel
// images fetched with apt-get download and unpacked with dpkg -x, and the initramfs (busybox, probe,
// /init) written as a newc cpio archive. Anything missing that cannot be installed is one line.

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';

export class SetupError extends Error {
  constructor(msg: string) {
    super(msg);
    this.name = 'SetupError';
  }
}

export const ROOT = path.join(__dirname, '..', fs.existsSync(path.join(__dirname, '..', 'probe')) ? '' : '..');
export const PROBE_SRC = path.join(ROOT, 'probe', 'pinlab-probe.c');

export function cacheDir(): string {
  const d = process.env.PINLAB_CACHE ?? path.join(ROOT, '.cache');
  fs.mkdirSync(d, { recursive: true });
  return d;
}

function run(cmd: string, args: string[], opts: { cwd?: string; quiet?: boolean } = {}) {
  return spawnSync(cmd, args, { cwd: opts.cwd, encoding: 'utf8', maxBuffer: 64 << 20 });
}

function have(bin: string): boolean {
  return run('sh', ['-c', `command -v ${bin}`]).status === 0;
}

function debInstalled(pkg: string): boolean {
  const r = run('dpkg-query', ['-W', '-f=${Status}', pkg]);
  return r.status === 0 && r.stdout.includes('install ok installed');
}

/** Host packages: [package, how to tell it is there]. busybox must be the static build (the initramfs has no libc). */
const HOST_NEEDS: [string, () => boolean][] = [
  ['qemu-system-x86', () => have('qemu-system-x86_64')],
  [
    'busybox-static',
    () => debInstalled('busybox-static') || (fs.existsSync('/bin/busybox') && isStatic('/bin/busybox')),
  ],
  ['gcc', () => have('gcc')],
  ['libc6-dev', () => fs.existsSync('/usr/lib/x86_64-linux-gnu/libc.a')],
];

/** An ELF file without a PT_INTERP program header is static. */
export function isStatic(file: string): boolean {
  let b: Buffer;
  try {
    b = fs.readFileSync(file);
  } catch {
    return false;
  }
  if (b.length < 64 || b.readUInt32BE(0) !== 0x7f454c46 || b[4] !== 2) return false;
  const phoff = Number(b.readBigUInt64LE(0x20));
  const phentsize = b.readUInt16LE(0x36);
  const phnum = b.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) if (b.readUInt32LE(phoff + i * phentsize) === 3) return false; // PT_INTERP
  return true;
}

let hostChecked = false;

/** Install what is missing with apt-get (as root), or say in one line what is missing. */
export function ensureHost(log: (s: string) => void): void {
  if (hostChecked) return;
  ensurePackages(HOST_NEEDS, log);
  hostChecked = true;
}

/** Debian packages a feature needs ([package, how to tell it is there]): apt-get install the missing ones as root. */
export function ensurePackages(needs: [string, () => boolean][], log: (s: string) => void): void {
  const missing = needs.filter(([, ok]) => !ok()).map(([p]) => p);
  if (!missing.length) return;
  const cmd = `apt-get install -y --no-install-recommends ${missing.join(' ')}`;
  if (process.getuid?.() !== 0 || !have('apt-get'))
    throw new SetupError(`missing ${missing.join(', ')} (install: ${cmd})`);
  log(`pinlab: installing ${missing.join(' ')} (${cmd})`);
  let r = run('sh', ['-c', `DEBIAN_FRONTEND=noninteractive ${cmd}`]);
  if (r.status !== 0) {
    // a machine that never ran apt-get update has no package lists
    run('sh', ['-c', 'DEBIAN_FRONTEND=noninteractive apt-get update -q']);
    r = run('sh', ['-c', `DEBIAN_FRONTEND=noninteractive ${cmd}`]);
  }
  const still = needs.filter(([, ok]) => !ok()).map(([p]) => p);
  if (r.status !== 0 || still.length)
    throw new SetupError(
      `missing ${still.join(', ') || missing.join(', ')}: '${cmd}' failed: ${lastLine(r.stderr || r.stdout)}`,
    );
}

/** The path of a program on PATH, or null. */
export function which(bin: string): string | null {
  const r = run('sh', ['-c', `command -v ${bin}`]);
  return r.status === 0 ? r.stdout.trim() || null : null;
}

function lastLine(s: string | null): string {
  return (
    (s ?? '')
      .trim()
      .split('\n')
      .filter((l) => !/^W: /.test(l))
      .pop() ?? ''
  );
}

function sha(...parts: (string | Buffer)[]): string {
  const h = crypto.createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex').slice(0, 16);
}

/** gcc -static -O2 probe/pinlab-probe.c, cached by the source's hash. */
export function buildProbe(): string {
  const src = fs.readFileSync(PROBE_SRC);
  const dir = path.join(cacheDir(), 'probe');
  const out = path.join(dir, `pinlab-probe-${sha(src)}`);
  if (fs.existsSync(out)) return out;
  fs.mkdirSync(dir, { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`; // two runs may build at once
  const r = run('gcc', ['-static', '-O2', '-Wall', '-o', tmp, PROBE_SRC]);
  if (r.status !== 0)
    throw new SetupError(
      `building the probe failed: ${(r.stderr || '').split('\n').find((l) => l.includes('error')) ?? lastLine(r.stderr)}`,
    );
  fs.renameSync(tmp, out);
  return out;
}

// ---------- kernels ----------

export interface KernelImage {
  /** what the user named: debian:6.12 or a path */
  spec: string;
  bzImage: string;
  /** uname -r as the image reports it */
  release: string;
  /** lib/modules/<release>, when there is one */
  modulesDir?: string;
  /** the build's .config, when known */
  config?: Map<string, string>;
  /** the model variant whose expectations apply (v6.12, v6.1, ...) */
  variant: string;
}

const DEBIAN: Record<string, RegExp> = {
  '6.12': /^linux-image-6\.12\.[0-9]+\+deb[0-9]+-amd64-unsigned$/,
  '6.1': /^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$/,
};

export const DEBIAN_KERNELS = Object.keys(DEBIAN).map((k) => `debian:${k}`);

/**
 * Kernel releases and the model variant that stands for each, newest first: a release runs as the first
 * row it is not older than. The rows follow the fixes of the regression corpus: R10's in v6.2 and 6.1.13,
 * R8's in v5.19, the series in v5.13. `debian` names the package image that is such a release.
 */
export const RELEASE_VARIANTS: readonly {
  from: readonly [number, number, number];
  variant: string;
  debian?: string;
}[] = [
  { from: [6, 12, 0], variant: 'v6.12', debian: 'debian:6.12' },
  { from: [6, 2, 0], variant: 'v6.1+-R10' },
  { from: [6, 1, 13], variant: 'v6.1+-R10', debian: 'debian:6.1' },
  { from: [6, 1, 0], variant: 'v6.1' },
  { from: [5, 19, 0], variant: 'v5.13+-R8' },
  { from: [5, 13, 0], variant: 'v5.13' },
  { from: [0, 0, 0], variant: 'v5.12' },
];

const older = (a: readonly number[], b: readonly number[]): boolean =>
  a[0]! !== b[0]! ? a[0]! < b[0]! : a[1]! !== b[1]! ? a[1]! < b[1]! : a[2]! < b[2]!;

/**
 * The model variant for a kernel version (the full version string: Debian's 6.1 releases are named 6.1.0-N
 * but say "Debian 6.1.192-3" further on): the first row of RELEASE_VARIANTS the version is not older than.
 */
export function variantForRelease(version: string): string {
  const up = /Debian (\d+)\.(\d+)\.(\d+)/.exec(version) ?? /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(version);
  const v = up ? [Number(up[1]), Number(up[2]), up[3] !== undefined ? Number(up[3]) : 0] : [0, 0, 0];
  return RELEASE_VARIANTS.find((r) => !older(v, r.from))!.variant;
}

/** "6.1.13", "5.19": a release as people write it. */
const releaseName = (r: readonly number[]): string => (r[2] ? r.join('.') : `${r[0]}.${r[1]}`);

/**
 * Which real kernels a model variant stands for: Debian's images (`--kernel debian:X`) and the release
 * ranges a user's own bzImage must come from. A variant no release matches (series-v1, one with a bug
 * switch added) runs only on a kernel built with that code.
 */
export function realKernelsFor(variant: string): { debian: string[]; releases: string[] } {
  const debian: string[] = [];
  const releases: string[] = [];
  RELEASE_VARIANTS.forEach((r, i) => {
    if (r.variant !== variant) return;
    if (r.debian) debian.push(r.debian);
    if (RELEASE_VARIANTS[i + 1]?.variant === variant) return; // one range: from the oldest row of a run
    let top = i;
    while (RELEASE_VARIANTS[top - 1]?.variant === variant) top--;
    const next = RELEASE_VARIANTS[top - 1]?.from;
    const low = releaseName(r.from);
    if (!next) releases.push(`${low} and later`);
    else if (r.from[0] === 0) releases.push(`before ${releaseName(next)}`);
    else releases.push(`${low} to before ${releaseName(next)}`);
  });
  return { debian, releases };
}

/** Check a kernel name or path without fetching anything; a bad one is a SetupError (exit 2). */
export function checkKernelSpec(spec: string): void {
  if (spec.startsWith('debian:')) {
    if (!Object.hasOwn(DEBIAN, spec.slice(7)))
      throw new SetupError(`--kernel: unknown kernel '${spec}' (${DEBIAN_KERNELS.join(', ')}, or a path to a bzImage)`);
    return;
  }
  if (!fs.existsSync(spec))
    throw new SetupError(`--kernel: no such file '${spec}' (${DEBIAN_KERNELS.join(', ')}, or a path to a bzImage)`);
  if (!fs.statSync(spec).isFile()) throw new SetupError(`--kernel: '${spec}' is not a file (a bzImage)`);
}

/** The version string in a bzImage's setup header (boot protocol 2.00+: kernel_version at 0x20e). */
export function bzImageVersion(file: string): string | undefined {
  let b: Buffer;
  try {
    b = fs.readFileSync(file);
  } catch {
    return undefined;
  }
  if (b.length < 0x300 || b.toString('latin1', 0x202, 0x206) !== 'HdrS') return undefined;
  const off = b.readUInt16LE(0x20e) + 0x200;
  if (off >= b.length) return undefined;
  const end = b.indexOf(0, off);
  return b.toString('latin1', off, end < 0 ? off + 160 : Math.min(end, off + 160));
}

/** uname -r of a bzImage. */
export function bzImageRelease(file: string): string | undefined {
  return bzImageVersion(file)?.split(' ')[0];
}

function readConfig(file: string): Map<string, string> | undefined {
  if (!fs.existsSync(file)) return undefined;
  const m = new Map<string, string>();
  for (const l of fs.readFileSync(file, 'utf8').split('\n')) {
    const mt = /^(CONFIG_\w+)=(.*)$/.exec(l);
    if (mt) m.set(mt[1]!, mt[2]!);
  }
  return m;
}

/** A kernel by name (fetched and cached on first use) or a path to the user's own bzImage. */
export function resolveKernel(spec: string, opts: { modules?: string; log: (s: string) => void }): KernelImage {
  checkKernelSpec(spec);
  if (!spec.startsWith('debian:')) {
    const release = bzImageRelease(spec);
    if (!release) throw new SetupError(`--kernel: '${spec}' is not a bzImage (no HdrS setup header)`);
    let modulesDir = opts.modules;
    if (modulesDir && !fs.existsSync(modulesDir)) throw new SetupError(`--modules: no such directory '${modulesDir}'`);
    if (modulesDir && fs.existsSync(path.join(modulesDir, 'lib', 'modules', release)))
      modulesDir = path.join(modulesDir, 'lib', 'modules', release);
    const config =
      readConfig(path.join(path.dirname(spec), '..', '..', '..', '.config')) ??
      readConfig(path.join(path.dirname(spec), 'config'));
    return {
      spec,
      bzImage: path.resolve(spec),
      release,
      modulesDir,
      config,
      variant: variantForRelease(bzImageVersion(spec) ?? release),
    };
  }
  const ver = spec.slice(7);
  const dir = path.join(cacheDir(), 'kernels', `debian-${ver}`);
  const stamp = path.join(dir, 'kernel.json');
  if (!fs.existsSync(stamp)) fetchDebian(ver, dir, opts.log);
  const k = JSON.parse(fs.readFileSync(stamp, 'utf8')) as { package: string; release: string };
  const bzImage = path.join(dir, 'boot', `vmlinuz-${k.release}`);
  return {
    spec,
    bzImage,
    release: k.release,
    modulesDir: path.join(dir, 'lib', 'modules', k.release),
    config: readConfig(path.join(dir, 'boot', `config-${k.release}`)),
    variant: variantForRelease(bzImageVersion(bzImage) ?? k.release),
  };
}

function debianPackage(ver: string): string | undefined {
  const list = () =>
    run('apt-cache', ['search', '--names-only', DEBIAN[ver]!.source])
      .stdout.split('\n')
      .map((l) => l.split(' ')[0]!)
      .filter((n) => DEBIAN[ver]!.test(n));
  let names = list();
  if (!names.length) {
    // no package lists yet
    run('sh', ['-c', 'DEBIAN_FRONTEND=noninteractive apt-get update -q']);
    names = list();
  }
  // the newest: compare the numbers in the name
  const key = (n: string) => (n.match(/\d+/g) ?? []).map(Number);
  names.sort((a, b) => {
    const x = key(a),
      y = key(b);
    for (let i = 0; i < Math.max(x.length, y.length); i++)
      if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0);
    return 0;
  });
  return names.pop();
}

function fetchDebian(ver: string, dir: string, log: (s: string) => void): void {
  if (!have('apt-get') || !have('dpkg'))
    throw new SetupError(`debian:${ver} needs apt-get and dpkg (a Debian host), or give --kernel PATH to a bzImage`);
  const pkg = debianPackage(ver);
  if (!pkg)
    throw new SetupError(`debian:${ver}: no package matching ${DEBIAN[ver]!.source} (apt-cache search found none)`);
  log(`pinlab: fetching ${pkg} (apt-get download, dpkg -x into ${path.relative(process.cwd(), dir) || dir})`);
  const tmp = `${dir}.${process.pid}.tmp`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  let r = run('apt-get', ['download', '-q', pkg], { cwd: tmp });
  const deb = fs.readdirSync(tmp).find((f) => f.endsWith('.deb'));
  if (r.status !== 0 || !deb) throw new SetupError(`apt-get download ${pkg} failed: ${lastLine(r.stderr)}`);
  r = run('dpkg', ['-x', deb, '.'], { cwd: tmp });
  if (r.status !== 0) throw new SetupError(`dpkg -x ${deb} failed: ${lastLine(r.stderr)}`);
  fs.rmSync(path.join(tmp, deb));
  const vmlinuz = fs.readdirSync(path.join(tmp, 'boot')).find((f) => f.startsWith('vmlinuz-'));
  if (!vmlinuz) throw new SetupError(`${pkg} has no boot/vmlinuz-*`);
  fs.rmSync(path.join(tmp, 'usr'), { recursive: true, force: true });
  fs.writeFileSync(path.join(tmp, 'kernel.json'), JSON.stringify({ package: pkg, release: vmlinuz.slice(8) }) + '\n');
  if (fs.existsSync(path.join(dir, 'kernel.json'))) {
    fs.rmSync(tmp, { recursive: true, force: true });
    return;
  } // another run was first
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(tmp, dir);
}

// ---------- modules ----------

/** modinfo's depends= of a .ko (its .modinfo section), without readelf. */
function koDepends(file: string): string[] {
  const b = fs.readFileSync(file);
  const i = b.indexOf('depends=');
  if (i < 0) return [];
  const end = b.indexOf(0, i);
  return b
    .toString('latin1', i + 8, end)
    .split(',')
    .filter(Boolean);
}

/**
 * Modules to load, dependencies first (the packages carry no modules.dep): each as [name, .ko bytes].
 * .ko.xz is decompressed with xz (busybox insmod does not).
 */
export function moduleClosure(modulesDir: string, names: string[]): { name: string; data: Buffer }[] {
  const index = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.ko(\.xz|\.zst|\.gz)?$/.test(e.name)) index.set(e.name.replace(/\.ko.*$/, '').replace(/-/g, '_'), p);
    }
  };
  walk(modulesDir);
  const builtin = new Set<string>();
  const bf = path.join(modulesDir, 'modules.builtin');
  if (fs.existsSync(bf))
    for (const l of fs.readFileSync(bf, 'utf8').split('\n'))
      if (l) builtin.add(path.basename(l).replace(/\.ko$/, '').replace(/-/g, '_'));
  const out: { name: string; data: Buffer }[] = [];
  const seen = new Set<string>();
  const visit = (n: string, chain: string[]) => {
    const name = n.replace(/-/g, '_');
    if (seen.has(name) || builtin.has(name)) return;
    const file = index.get(name);
    if (!file)
      throw new SetupError(
        `--load: no module '${n}' in ${modulesDir}${chain.length ? ` (needed by ${chain.join(' <- ')})` : ''}`,
      );
    seen.add(name);
    let data = fs.readFileSync(file);
    if (file.endsWith('.xz')) {
      const r = spawnSync('xz', ['-dc', file], { maxBuffer: 256 << 20 });
      if (r.status !== 0) throw new SetupError(`xz -d ${path.basename(file)} failed (is xz-utils installed?)`);
      data = r.stdout;
    } else if (file.endsWith('.zst') || file.endsWith('.gz')) {
      const r = spawnSync(file.endsWith('.gz') ? 'gzip' : 'zstd', ['-dc', file], { maxBuffer: 256 << 20 });
      if (r.status !== 0) throw new SetupError(`decompressing ${path.basename(file)} failed`);
      data = r.stdout;
    }
    const ko = file.endsWith('.ko') ? file : tmpKo(data);
    const deps = koDepends(ko);
    if (ko !== file) fs.rmSync(ko, { force: true });
    for (const d of deps) visit(d, [name, ...chain]);
    out.push({ name, data });
  };
  for (const n of names) visit(n, []);
  return out;
}

function tmpKo(data: Buffer): string {
  const f = path.join(cacheDir(), `modinfo-${process.pid}.ko`); // readelf-free: depends= is a plain string in .modinfo
  fs.writeFileSync(f, data);
  return f;
}

// ---------- initramfs ----------

/** A newc ("070701") cpio archive: directories, files (mode 0755 or 0644) and the trailer. */
export function cpioNewc(entries: { name: string; data?: Buffer; mode?: number; dir?: boolean }[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  const pad = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);
  const add = (name: string, mode: number, data: Buffer) => {
    const nameBuf = Buffer.from(name + '\0');
    const hex = (v: number) => v.toString(16).padStart(8, '0');
    const hdr = '070701' + [ino++, mode, 0, 0, 1, 0, data.length, 0, 0, 0, 0, nameBuf.length, 0].map(hex).join('');
    parts.push(Buffer.from(hdr), nameBuf, pad(110 + nameBuf.length), data, pad(data.length));
  };
  for (const e of entries)
    add(e.name, e.dir ? 0o040755 : 0o100000 | (e.mode ?? 0o644), e.dir ? Buffer.alloc(0) : (e.data ?? Buffer.alloc(0)));
  add('TRAILER!!!', 0, Buffer.alloc(0));
  return Buffer.concat(parts);
}

export const INIT_SCRIPT = `#!/bin/busybox sh
# pinlab's guest: mount, load modules, run the probe on /prog.txt with results on the second serial port
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
if [ -f /modules.list ]; then
  while read m a; do insmod /lib/modules/$m.ko $a && echo "pinlab-init: loaded $m $a" > /dev/ttyS1 || echo "pinlab-init: insmod $m $a failed" > /dev/ttyS1; done < /modules.list
fi
/probe /prog.txt /dev/ttyS1
poweroff -f
`;

/** The cached base initramfs: busybox, the probe and /init. The per-run program is a second archive. */
export function baseInitramfs(probe: string): string {
  const busybox = fs.readFileSync('/bin/busybox');
  const probeBin = fs.readFileSync(probe);
  const file = path.join(cacheDir(), 'initramfs', `base-${sha(busybox, probeBin, INIT_SCRIPT)}.cpio`);
  if (fs.existsSync(file)) return file;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const cpio = cpioNewc([
    { name: 'bin', dir: true },
    { name: 'proc', dir: true },
    { name: 'sys', dir: true },
    { name: 'dev', dir: true },
    { name: 'tmp', dir: true },
    { name: 'lib', dir: true },
    { name: 'lib/modules', dir: true },
    { name: 'bin/busybox', data: busybox, mode: 0o755 },
    { name: 'probe', data: probeBin, mode: 0o755 },
    { name: 'init', data: Buffer.from(INIT_SCRIPT), mode: 0o755 },
  ]);
  fs.writeFileSync(`${file}.${process.pid}.tmp`, cpio);
  fs.renameSync(`${file}.${process.pid}.tmp`, file);
  return file;
}

/** Everything a run needs, prepared once per kernel: host tools, probe, base initramfs, the kernel. */
export function prepare(
  spec: string,
  opts: { modules?: string; log: (s: string) => void },
): { kernel: KernelImage; probe: string; initramfs: string } {
  ensureHost(opts.log);
  const kernel = resolveKernel(spec, opts);
  const probe = buildProbe();
  return { kernel, probe, initramfs: baseInitramfs(probe) };
}
