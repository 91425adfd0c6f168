// Cluster: capacity, allocated and used for CPU, memory, GPUs and GPU memory; hosts and
// workloads by state; and the stranded GPU share.
import type { Host, List, Workload } from './model';
import { cpu, fmtMiB, mib, pct, trim } from './format';

function Bar(props: { label: string; capacity: number; allocated: number; used?: number; fmt: (v: number) => string }) {
  const { capacity, allocated, used, fmt } = props;
  return (
    <div class="bar-row" data-resource={props.label}>
      <div class="bar-label">{props.label}</div>
      <div class="bar">
        <div class="bar-alloc" style={{ width: `${pct(allocated, capacity)}%` }} />
        {used !== undefined && <div class="bar-used" style={{ width: `${pct(used, capacity)}%` }} />}
      </div>
      <div class="bar-figures">
        allocated {fmt(allocated)} of {fmt(capacity)}
        {used !== undefined ? ` · used ${fmt(used)}` : ' · used not reported'}
      </div>
    </div>
  );
}

function Counts(props: { title: string; counts: Record<string, number> }) {
  const keys = Object.keys(props.counts).sort();
  return (
    <div class="card">
      <h3>{props.title}</h3>
      {keys.length === 0 && <p class="empty">none</p>}
      <ul class="counts">
        {keys.map((k) => (
          <li key={k} data-state={k}>
            <span class={`state state-${k}`}>{k}</span> {props.counts[k]}
          </li>
        ))}
      </ul>
    </div>
  );
}

export function ClusterView(props: { hosts?: List<Host>; workloads?: List<Workload> }) {
  const hosts = props.hosts?.items || [];
  const workloads = props.workloads?.items || [];
  let capCpu = 0, allocCpu = 0, usedCpu = 0, capMem = 0, allocMem = 0, usedMem = 0;
  let capGpu = 0, allocGpu = 0, capGpuMem = 0, allocGpuMem = 0, usedGpuMem = 0, gpuUtil = 0, gpuUtilN = 0;
  let anyUsed = false, anyGpuUsed = false;
  // Stranded: free GPU capacity on devices that are partly allocated, which a request for a
  // whole device cannot use (the share of free GPU capacity that fragmentation strands).
  let freeGpu = 0, stranded = 0;
  const hostStates: Record<string, number> = {};
  for (const h of hosts) {
    hostStates[h.state] = (hostStates[h.state] || 0) + 1;
    if (h.state !== 'ready') continue;
    capCpu += cpu(h.inventory.cpu);
    capMem += mib(h.inventory.memory);
    capGpu += h.inventory.gpus.length;
    for (const g of h.inventory.gpus) capGpuMem += mib(g.memory);
    if (h.allocated) {
      allocCpu += cpu(h.allocated.cpu);
      allocMem += mib(h.allocated.memory);
      allocGpu += h.allocated.gpu_milli / 1000;
      for (const g of h.allocated.gpus) {
        const dev = h.inventory.gpus.find((d) => d.index === g.index);
        allocGpuMem += g.milli >= 1000 && dev ? mib(dev.memory) : mib(g.memory);
        const free = (1000 - g.milli) / 1000;
        freeGpu += free;
        if (g.milli > 0 && g.milli < 1000) stranded += free;
      }
    }
    if (h.used) {
      anyUsed = true;
      usedCpu += cpu(h.used.cpu);
      usedMem += mib(h.used.memory);
      for (const g of h.used.gpus) {
        anyGpuUsed = true;
        usedGpuMem += mib(g.memory_used);
        gpuUtil += g.utilization_percent;
        gpuUtilN++;
      }
    }
  }
  const workloadStates: Record<string, number> = {};
  for (const w of workloads) workloadStates[w.status.state] = (workloadStates[w.status.state] || 0) + 1;
  return (
    <section id="view-cluster">
      <h2>Cluster</h2>
      <div class="card">
        <h3>Capacity, allocated and used (ready hosts)</h3>
        <Bar label="CPU" capacity={capCpu} allocated={allocCpu} used={anyUsed ? usedCpu : undefined} fmt={(v) => `${trim(v)} cores`} />
        <Bar label="Memory" capacity={capMem} allocated={allocMem} used={anyUsed ? usedMem : undefined} fmt={fmtMiB} />
        <Bar label="GPUs" capacity={capGpu} allocated={allocGpu} used={anyGpuUsed ? (gpuUtil / 100) : undefined} fmt={(v) => trim(v)} />
        <Bar label="GPU memory" capacity={capGpuMem} allocated={allocGpuMem} used={anyGpuUsed ? usedGpuMem : undefined} fmt={fmtMiB} />
        <p class="note">
          Stranded GPU share: <b id="stranded">{freeGpu > 0 ? `${trim((100 * stranded) / freeGpu)}%` : '0%'}</b> of
          free GPU capacity sits on partly allocated devices
          {gpuUtilN > 0 ? ` · mean GPU utilization ${trim(gpuUtil / gpuUtilN)}%` : ''}.
        </p>
      </div>
      <div class="cards">
        <Counts title={`Hosts (${hosts.length})`} counts={hostStates} />
        <Counts title={`Workloads (${workloads.length})`} counts={workloadStates} />
      </div>
    </section>
  );
}
