// dma-integrity: a DMA lands where the pin says. Only the actor doing the DMA sees the moment (a device
// model through its IOMMU table or its translations, the pinner through the frames it captured), so it
// checks and reports it, with the device side's shared check (dmaTargetViolation() in devices/common.ts).
import type { Property } from './property';

export const dmaIntegrity = {
  name: 'dma-integrity',
  promise:
    'A DMA lands in the frame pinned at map time, which is allocated, still pinned and still what the process maps there unless it unmapped the range; through an mmu interval notifier, only via a translation made under an unretried sequence.',
  reference:
    'pin_user_pages() (Documentation/core-api/pin_user_pages.rst, case 2: RDMA and VFIO); mmu_interval_read_retry() (mm/mmu_notifier.c)',
  phases: ['op'],
} as const satisfies Property<'dma-integrity'>;
