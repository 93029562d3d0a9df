// pinlab layout: boot a machine from a kernel command line and show it as the kernel does.
import { DEFAULT_CMDLINE } from '../../mm/cmdline';
import { bootFromSpec, layoutJson, layoutText } from '../layout';
import { Command, parse, UsageError } from './command';

const LAYOUT_HELP = `usage: pinlab layout [--cmdline "..."] [--geometry G] [--json] [--pcp]

Boot a machine and print it the way the kernel shows it: the boot log's e820 map and zone ranges, /proc/zoneinfo,
/proc/pagetypeinfo, and /sys/devices/system/memory/memoryN/{state,valid_zones,removable}.

options:
  --cmdline "..."   kernel command line (default: "${DEFAULT_CMDLINE}")
  --geometry G      x86_64 (default: 4K pages, pageblock_order 9, MAX_PAGE_ORDER 10, 128M blocks, 8 CPUs)
                    or mini (8-frame pageblocks, orders 0..4, 32-frame blocks, no DMA/DMA32 zones),
                    optionally followed by overrides: mini,pageblock_order=3,max_order=4,block_pages=32,cpus=4
                    and kernel_pfn=N (where the kernel image and ZERO_PAGE sit: physical KASLR)
  --json            the same as JSON (zones[], blocks[] with the kernel's field names)
  -h, --help        this text

kernel parameters honoured (kernel semantics and units: K/M/G, % where the kernel allows it):
  mem=  kernelcore=  movablecore=  cma=size[@base[-limit]]  movable_node  memhp_default_state=
  memory_hotplug.online_policy=contig-zones|auto-movable  memory_hotplug.auto_movable_ratio=
  hugepagesz=  hugepages=  default_hugepagesz=  hugetlb_free_vmemmap=on|off  sysctl.vm.min_free_kbytes=  min_free_kbytes=
  sysctl.vm.watermark_scale_factor=  transparent_hugepage=always|madvise|never
  pinlab.hotplug=SIZE   hot-pluggable memory that boots offline (onlined per memhp_default_state)
  memmap=nn@ss|nn$ss|nn#ss|nn!ss|nn|exactmap   edit the e820 map (RAM, reserved, ACPI data, persistent, limit)
  pinlab.machine=pc|q35 the QEMU machine whose e820 map x86_64 boots from (default pc, as pinlab kernel runs);
                        mem=SIZE is its RAM (split around the PCI hole, the rest above 4G)
  pinlab.kmem=debian|none   x86_64: whether the booted kernel's own memory (slab, stacks, DMA pools, ...,
                        measured on Debian's 6.12 or 6.1 by the variant's release) and the guest's init are
                        allocated after boot (default debian; docs/simplifications.md)
  vfio_iommu_type1.dma_entry_limit=N   the VFIO module parameter (vfio-type1, vfio-mdev)
  pinlab.iommu_aw_bits=39|48   the IOMMU's address width (QEMU intel-iommu aw-bits; vfio-type1's aperture)
  numa=fake=N | numa=off   NUMA emulation: N nodes split from the one physical node (at most 4)
  pinlab.numa_nodes=SIZE,SIZE...   the machine's NUMA nodes from pfn 0 (QEMU -numa node,mem=; the last takes the rest)
  pinlab.hotpluggable_node=N[,M]   nodes whose memory the SRAT marks hotpluggable (all ZONE_MOVABLE with movable_node)
`;

export const layout: Command = {
  name: 'layout',
  summary: 'boot a machine from a kernel command line and show its zones, free lists and memory blocks',
  help: () => LAYOUT_HELP,
  sync: true,
  run(argv, io) {
    const { values, positionals } = parse('layout', argv, {
      cmdline: { type: 'string' },
      geometry: { type: 'string' },
      json: { type: 'boolean' },
    });
    if (positionals.length)
      throw new UsageError(`layout: unexpected argument '${positionals[0]}' (quote the command line: --cmdline "...")`);
    if (values.help) {
      io.out(LAYOUT_HELP);
      return 0;
    }
    const cmdline = (values.cmdline as string | undefined) ?? DEFAULT_CMDLINE;
    const { m, params } = bootFromSpec({ cmdline, geometry: values.geometry as string | undefined });
    io.out(values.json ? JSON.stringify(layoutJson(m, params), null, 2) + '\n' : layoutText(m, params));
    return 0;
  },
};
