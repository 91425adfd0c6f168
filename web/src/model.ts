// The shapes of the API's answers that the dashboard reads (see the README's REST API table).

export interface GpuDevice {
  index: number;
  uuid: string;
  model: string;
  memory: string;
  numa_node: number;
  nvlink_island: number;
  mig_enabled: boolean;
}

export interface Host {
  name: string;
  state: string;
  last_heartbeat: string | null;
  registered_at: string | null;
  inventory: {
    cpu: string;
    memory: string;
    disk: string;
    gpus: GpuDevice[];
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
    gpus: { index: number; milli: number }[];
    explanation?: string;
    started_at: string | null;
  };
}

export interface List<T> {
  items: T[];
  revision?: number;
}

export function gpuText(g: GpuRequest | undefined): string {
  if (!g) return '-';
  const models = g.models && g.models.length ? ` ${g.models.join('|')}` : '';
  if (g.count) return `${g.count}${models}`;
  if (g.share) return `${g.share}${models}`;
  if (g.mig) return `${g.mig}${models}`;
  return '-';
}
