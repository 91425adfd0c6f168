// Cluster: capacity, allocated and used for CPU, memory, GPUs and GPU memory; hosts and
// workloads by state; the stranded GPU share, and FGD's fragmentation of the live cluster. Every figure comes from GET /v1/summary, which
// the server sums, so the page never lists the hosts or the workloads.
import { useLive } from './api';
import type { Summary } from './model';
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

// The summary changes with every heartbeat (the usage figures live in memory, not in the
// store), so it is read again every five seconds rather than through a blocking query.
export const kSummaryPollMs = 5000;

export function ClusterView() {
  const live = useLive<Summary>('/v1/summary', kSummaryPollMs);
  const s = live.data;
  if (!s) {
    return (
      <section id="view-cluster">
        <h2>Cluster</h2>
        {live.error ? <p class="error">{live.error}</p> : <p class="empty">loading</p>}
      </section>
    );
  }
  const anyUsed = s.used.hosts_reporting > 0;
  const anyGpuUsed = s.used.gpus_reporting > 0;
  const f = s.gpu_fragmentation;
  return (
    <section id="view-cluster">
      <h2>Cluster</h2>
      {live.error && <p class="error">{live.error}</p>}
      <div class="card">
        <h3>Capacity, allocated and used (ready hosts)</h3>
        <Bar label="CPU" capacity={cpu(s.capacity.cpu)} allocated={cpu(s.allocated.cpu)} used={anyUsed ? cpu(s.used.cpu) : undefined} fmt={(v) => `${trim(v)} cores`} />
        <Bar label="Memory" capacity={mib(s.capacity.memory)} allocated={mib(s.allocated.memory)} used={anyUsed ? mib(s.used.memory) : undefined} fmt={fmtMiB} />
        <Bar
          label="GPUs"
          capacity={s.capacity.gpus}
          allocated={s.allocated.gpu_milli / 1000}
          used={anyGpuUsed ? (s.used.gpu_utilization_percent / 100) * s.used.gpus_reporting : undefined}
          fmt={(v) => trim(v)}
        />
        <Bar label="GPU memory" capacity={mib(s.capacity.gpu_memory)} allocated={mib(s.allocated.gpu_memory)} used={anyGpuUsed ? mib(s.used.gpu_memory) : undefined} fmt={fmtMiB} />
        <p class="note">
          GPUs used is busy device time: the mean utilization ({trim(s.used.gpu_utilization_percent)}%) times the{' '}
          {s.used.gpus_reporting} devices whose agents report it; used figures come from {s.used.hosts_reporting} of{' '}
          {s.hosts.ready} ready hosts.
        </p>
        <p class="note" id="fragmentation">
          Stranded GPU share: <b id="stranded">{trim(f.stranded_pct)}%</b> of the free GPU capacity ({trim(f.free_milli / 1000)}{' '}
          GPUs) sits on partly allocated devices, where no request for a whole device can use it; {f.whole_free_gpus} devices
          are wholly free.
        </p>
        <p class="note" id="fgd">
          Fragmentation as <code>berth sim fill</code> measures it (FGD, against the mix of the {f.fgd.mix_shapes} distinct
          shapes of the workloads): <b id="fgd-ratio">{trim(f.fgd.ratio_pct)}%</b> of the free GPU capacity, {trim(f.fgd.fragmented_pct)}% of
          all of it ({trim(f.fgd.fragmented_milli / 1000)} GPUs), is of no use to the workloads' shapes.
        </p>
      </div>
      <div class="cards">
        <Counts title={`Hosts (${s.hosts.total})`} counts={{ ready: s.hosts.ready, down: s.hosts.down, cordoned: s.hosts.cordoned }} />
        <Counts title={`Workloads (${s.workloads.total})`} counts={s.workloads.by_state} />
      </div>
    </section>
  );
}
