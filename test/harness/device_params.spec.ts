// A case file's machine sets what device models read (DeviceEnv.params), as a scenario's does: the
// vfio_iommu_type1 module's dma_entry_limit on the command line reaches the VFIO actor in its worker.
import { PoolHolder } from '../../harness/runner';
import { Case } from '../../harness/run_case';

let pool: PoolHolder;
beforeAll(() => {
  pool = new PoolHolder(2);
});
afterAll(async () => {
  await pool.destroy();
});

const mapDma = (iova: number, off: number) => ({
  op: 'map_dma',
  iova,
  vaddr: { map: 'buf', off },
  size: 4096,
  read: true,
  write: true,
});

async function secondMap(cmdline: string): Promise<string[]> {
  const cs: Case = {
    layout: { cmdline, geometry: 'mini', maps: [{ name: 'buf', pages: 8 }] },
    variant: 'v6.12',
    programs: { 'vfio-type1-0': [mapDma(0, 0), mapDma(65536, 1)] },
    schedule: [],
    faults: {},
  };
  const r = await pool.run(cs, { mode: 'det', seed: 1 });
  expect(r.failures).toEqual([]);
  return r.lines.map((l) => l.text).filter((t) => /map_dma/.test(t));
}

it('vfio_iommu_type1.dma_entry_limit= on the case machine: the second MAP_DMA is -ENOSPC', async () => {
  const base = 'mem=1M movablecore=512K sysctl.vm.min_free_kbytes=16';
  const limited = await secondMap(`${base} vfio_iommu_type1.dma_entry_limit=1`);
  const free = await secondMap(base);
  expect(limited.some((t) => /ENOSPC/.test(t))).toBe(true);
  expect(free.some((t) => /ENOSPC/.test(t))).toBe(false);
});
