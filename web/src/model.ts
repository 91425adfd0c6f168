// The shapes of the API's answers that the dashboard reads (see the README's REST API table).

export interface GpuDevice {
  index: number;
  uuid: string;
  model: string;
  memory: string;
  numa_node: number;
  nvlink_island: number;
  mig_enabled: boolean;
  pci_address?: string;
  healthy?: boolean;
  health?: string;
  mig_instances?: { profile: string; start_slice: number; uuid: string }[];
}

// A device of another class than nvidia.com/gpu (an FPGA, an NPU), from the host's CDI specs.
export interface OtherDevice {
  class: string;
  id: string;
  healthy: boolean;
  health?: string;
}

export interface Host {
  name: string;
  state: string;
  last_heartbeat: string | null;
  registered_at: string | null;
  cordoned?: boolean;
  inventory: {
    cpu: string;
    memory: string;
    disk: string;
    gpus: GpuDevice[];
    devices?: OtherDevice[];
    labels: Record<string, string>;
    drivers: string[];
    os: string;
    address: string;
  };
  allocated?: {
    cpu: string;
    memory: string;
    disk: string;
    gpu_milli: number;
    workloads: number;
    gpus: { index: number; milli: number; memory: string; holders: string[] }[];
    devices?: { class: string; id: string; holder: string }[];
  };
  used?: {
    cpu: string;
    memory: string;
    gpus: { index: number; utilization_percent: number; memory_used: string }[];
  } | null;
}

export interface GpuRequest {
  count?: number;
  share?: string;
  mig?: string;
  models?: string[];
}

export interface Workload {
  name: string;
  kind: string;
  created_at: string | null;
  spec: {
    name: string;
    kind: string;
    tenant: string;
    resources: { cpu: string; memory: string; disk?: string; gpu?: GpuRequest };
    [key: string]: unknown;
  };
  status: {
    state: string;
    desired: string;
    reason: string;
    host: string;
    gpus: GpuAssignment[];
    devices?: { class: string; id: string }[];
    explanation?: string;
    started_at: string | null;
  };
}

// What the scheduler gave a workload on one GPU.
export interface GpuAssignment {
  index: number;
  milli: number;
  memory_mib?: number;
  mig_profile?: string;
  mig_start_slice?: number;
  device_id?: string;
}

// GET /v1/summary: the cluster's totals over its ready hosts, summed by the server.
export interface Summary {
  revision: number;
  hosts: { total: number; ready: number; down: number; cordoned: number };
  workloads: { total: number; by_state: Record<string, number> };
  capacity: { cpu: string; memory: string; disk: string; gpus: number; gpu_memory: string };
  allocated: { cpu: string; memory: string; disk: string; gpu_milli: number; gpu_memory: string };
  used: {
    hosts_reporting: number;
    cpu: string;
    memory: string;
    gpus_reporting: number;
    gpu_memory: string;
    gpu_utilization_percent: number;
  };
  gpu_fragmentation: {
    free_milli: number;
    stranded_milli: number;
    whole_free_gpus: number;
    stranded_pct: number;
    // FGD's measure against the mix of every workload's shape, as `berth sim fill` measures it.
    fgd: { fragmented_milli: number; fragmented_pct: number; ratio_pct: number; mix_shapes: number; skipped: number };
  };
}

export interface List<T> {
  items: T[];
  revision?: number;
  continue?: string;
}

export function gpuText(g: GpuRequest | undefined): string {
  if (!g) return '-';
  const models = g.models && g.models.length ? ` ${g.models.join('|')}` : '';
  if (g.count) return `${g.count}${models}`;
  if (g.share) return `${g.share}${models}`;
  if (g.mig) return `${g.mig}${models}`;
  return '-';
}
