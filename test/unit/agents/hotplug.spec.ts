// The hotplug agent (harness/agents/hotplug.ts): an offline that names a page of the process writes the
// memoryN/state of the block backing that page now, as an admin reads /proc/PID/pagemap first.
import { boot } from '../../helpers';
import { bprmMmInit, doMmap, PROT_READ, PROT_WRITE } from '../../../mm/mmap';
import { putUser, pfnOf } from '../../../mm/memory';
import { setCurrent, newTask, current } from '../../../mm/sched';
import { MB_STRIDE, MB_ZONE, type Memmap } from '../../../mm/memmap';
import { ZONE_MOVABLE } from '../../../mm/mmzone';
import { hotplug, hotplugBlocks } from '../../../harness/agents/hotplug';
import type { AgentEnv } from '../../../harness/agents/agent';

const saved = current();
afterEach(() => {
  setCurrent(saved);
});

/** The hotplug agent of a machine whose process maps `buf` (pages written, so backed by movable memory). */
function setup(pages: number): { m: Memmap; mm: number; vpn: number; env: AgentEnv } {
  const m = boot('mem=1M movablecore=512K sysctl.vm.min_free_kbytes=16', 'mini');
  const mm = bprmMmInit(m);
  const vpn = doMmap(m, mm, { nrPages: 8, prot: PROT_READ | PROT_WRITE });
  setCurrent(newTask(100, 'user', 1, mm));
  for (let i = 0; i < pages; i++) expect(putUser(m, mm, vpn + i, i)).toBe(i);
  const env: AgentEnv = {
    m,
    mm: -1, // the agent works on no process
    procMm: mm,
    name: 'hotplug/0',
    bugs: new Set<string>(),
    rand: () => 0,
    yieldPoint: () => undefined,
    trace: () => undefined,
    maps: [{ name: 'buf', vpn, pages: 8 }],
    mapGen: () => 0,
    bumpMapGen: () => undefined,
    offlinePasses: 8,
  };
  setCurrent(newTask(101, 'hotplug', 0, -1));
  return { m, mm, vpn, env };
}

describe('hotplug agent: offline of the block backing a page', () => {
  it('names the block that backs the page, whatever block number it drew, and the page moves out of it', () => {
    const { m, mm, vpn, env } = setup(8);
    const blocks = hotplugBlocks(m);
    const pfn = pfnOf(m, mm, vpn + 3);
    const b = Math.floor(pfn / m.blockPages);
    expect(m.blocks[b * MB_STRIDE + MB_ZONE]).toBe(ZONE_MOVABLE);
    const drawn = (blocks.indexOf(b) + 1) % blocks.length; // a block number that alone picks another block
    const r = hotplug.create(env).step({ op: 'offline', block: drawn, map: 'buf', page: 3 + 8 }); // page wraps
    expect(r.detail).toMatch(new RegExp(`^memory${b} \\(Movable\\) offline: offline`));
    expect(Math.floor(pfnOf(m, mm, vpn + 3) / m.blockPages)).not.toBe(b);
  });

  it('a page not mapped, or a map the process lacks, falls back to the drawn block', () => {
    const { m, env } = setup(0);
    const blocks = hotplugBlocks(m);
    const agent = hotplug.create(env);
    expect(agent.step({ op: 'offline', block: 1, map: 'buf', page: 0 }).detail).toMatch(
      new RegExp(`^memory${blocks[1 % blocks.length]} `),
    );
    expect(agent.step({ op: 'offline', block: 2, map: 'nope', page: 0 }).detail).toMatch(
      new RegExp(`^memory${blocks[2 % blocks.length]} `),
    );
  });
});
