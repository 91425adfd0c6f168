// Hosts: a sortable, filterable table with allocated/capacity per resource, and per host a GPU
// map: each device with its model, the share allocated and who holds it, and the utilization
// and memory in use its agent reports.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import { useLive } from './api';
import type { Host, List, Workload } from './model';
import { Table } from './table';
import { age, cpu, fmtMiB, mib, pct, trim } from './format';
import { go } from './nav';

function ratio(alloc: string | undefined, cap: string, parse: (t: string | undefined) => number, fmt: (v: number) => string) {
  return `${fmt(parse(alloc))}/${fmt(parse(cap))}`;
}

export function HostsView(props: { hosts?: List<Host>; error?: string }) {
  const hosts = props.hosts?.items || [];
  return (
    <section id="view-hosts">
      <h2>Hosts</h2>
      {props.error && <p class="error">{props.error}</p>}
      <Table<Host>
        id="hosts-table"
        rows={hosts}
        rowKey={(h) => h.name}
        onRow={(h) => go(`#/hosts/${encodeURIComponent(h.name)}`)}
        empty="no hosts registered"
        columns={[
          { title: 'Name', value: (h) => h.name },
          { title: 'State', value: (h) => h.state, render: (h) => <span class={`state state-${h.state}`}>{h.state}</span> },
          { title: 'CPU alloc/cap', value: (h) => pct(cpu(h.allocated?.cpu), cpu(h.inventory.cpu)), render: (h) => ratio(h.allocated?.cpu, h.inventory.cpu, cpu, trim) },
          { title: 'Memory alloc/cap', value: (h) => pct(mib(h.allocated?.memory), mib(h.inventory.memory)), render: (h) => ratio(h.allocated?.memory, h.inventory.memory, mib, fmtMiB) },
          { title: 'GPUs alloc/cap', value: (h) => (h.allocated?.gpu_milli || 0) / 1000, render: (h) => `${trim((h.allocated?.gpu_milli || 0) / 1000)}/${h.inventory.gpus.length}${h.inventory.gpus.length ? ' × ' + h.inventory.gpus[0].model : ''}` },
          { title: 'Used CPU', value: (h) => cpu(h.used?.cpu), render: (h) => (h.used ? trim(cpu(h.used.cpu)) : '-') },
          { title: 'Used memory', value: (h) => mib(h.used?.memory), render: (h) => (h.used ? fmtMiB(mib(h.used.memory)) : '-') },
          { title: 'Workloads', value: (h) => h.allocated?.workloads || 0 },
          { title: 'Heartbeat', value: (h) => h.last_heartbeat || '', render: (h) => `${age(h.last_heartbeat)} ago` },
        ]}
      />
    </section>
  );
}

export function GpuMap(props: { host: Host }) {
  const h = props.host;
  if (h.inventory.gpus.length === 0) return <p class="empty">no GPUs</p>;
  return (
    <div class="gpu-map">
      {h.inventory.gpus.map((g) => {
        const a = h.allocated?.gpus.find((x) => x.index === g.index);
        const u = h.used?.gpus.find((x) => x.index === g.index);
        const share = a ? a.milli / 1000 : 0;
        return (
          <div class="gpu" key={g.index} data-gpu={g.index}>
            <div class="gpu-title">
              GPU {g.index} · {g.model} · {g.memory}
              {g.mig_enabled ? ' · MIG' : ''}
            </div>
            <div class="bar">
              <div class="bar-alloc" style={{ width: `${share * 100}%` }} />
              {u && <div class="bar-used" style={{ width: `${u.utilization_percent}%` }} />}
            </div>
            <div class="gpu-figures">
              allocated {trim(share)}
              {a && a.memory !== '0Mi' ? ` (${a.memory} reserved)` : ''}
              {u ? ` · utilization ${u.utilization_percent}% · memory used ${fmtMiB(mib(u.memory_used))}` : ' · usage not reported'}
            </div>
            <div class="holders">
              {a && a.holders.length > 0
                ? a.holders.map((w) => (
                    <a key={w} href={`#/workloads/${encodeURIComponent(w)}`}>
                      {w}
                    </a>
                  ))
                : 'idle'}
            </div>
          </div>
        );
      })}
    </div>
  );
}

interface UsageHistory {
  samples: { time: string; cpu: string; memory: string; gpus: { index: number; utilization_percent: number }[] }[];
}

// The host's usage over the last hour (the server keeps one report per 10 s): CPU in use against
// allocated, memory in use against allocated.
function UsageChart(props: { host: Host }) {
  const h = props.host;
  const live = useLive<UsageHistory>(`/v1/hosts/${encodeURIComponent(h.name)}/usage`, 10000);
  const el = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const samples = live.data?.samples || [];
  useEffect(() => {
    if (!el.current || samples.length === 0) return;
    const times = samples.map((s) => Date.parse(s.time) / 1000);
    const used = samples.map((s) => cpu(s.cpu));
    const alloc = samples.map(() => cpu(h.allocated?.cpu));
    const mem = samples.map((s) => mib(s.memory) / 1024);
    const memAlloc = samples.map(() => mib(h.allocated?.memory) / 1024);
    const data: uPlot.AlignedData = [times, used, alloc, mem, memAlloc];
    if (!plot.current) {
      plot.current = new uPlot(
        {
          width: 760,
          height: 220,
          series: [
            {},
            { label: 'CPU used (cores)', stroke: '#16a34a', scale: 'cpu' },
            { label: 'CPU allocated', stroke: '#2563eb', dash: [6, 4], scale: 'cpu' },
            { label: 'memory used (GiB)', stroke: '#ca8a04', scale: 'gib' },
            { label: 'memory allocated', stroke: '#9333ea', dash: [6, 4], scale: 'gib' },
          ],
          axes: [{}, { scale: 'cpu' }, { scale: 'gib', side: 1 }],
        },
        data,
        el.current,
      );
    } else {
      plot.current.setData(data);
    }
  }, [samples, h]);
  useEffect(() => () => plot.current?.destroy(), []);
  return (
    <div>
      {live.error && <p class="note">usage history: {live.error}</p>}
      {samples.length === 0 && <p class="empty">no usage reported yet</p>}
      <div ref={el} id="usage-chart" />
    </div>
  );
}

export function HostDetail(props: { name: string; hosts?: List<Host>; workloads?: List<Workload> }) {
  const h = props.hosts?.items.find((x) => x.name === props.name);
  if (!h) return <section id="view-host"><h2>Host {props.name}</h2><p class="empty">loading or not found</p></section>;
  const on = (props.workloads?.items || []).filter((w) => w.status.host === h.name);
  return (
    <section id="view-host">
      <h2>
        Host {h.name} <span class={`state state-${h.state}`}>{h.state}</span>
      </h2>
      <div class="card">
        <p>
          CPU {ratio(h.allocated?.cpu, h.inventory.cpu, cpu, trim)} allocated · memory{' '}
          {ratio(h.allocated?.memory, h.inventory.memory, mib, fmtMiB)} allocated
          {h.used ? ` · in use: CPU ${trim(cpu(h.used.cpu))}, memory ${fmtMiB(mib(h.used.memory))}` : ''}
        </p>
        <p>
          drivers {h.inventory.drivers.join(', ') || '-'} · {h.inventory.os || ''} · labels{' '}
          {Object.entries(h.inventory.labels || {}).map(([k, v]) => `${k}=${v}`).join(', ') || '-'}
        </p>
      </div>
      <h3>GPU map</h3>
      <GpuMap host={h} />
      <h3>Usage, last hour</h3>
      <UsageChart host={h} />
      <h3>Workloads on this host</h3>
      <ul>
        {on.map((w) => (
          <li key={w.name}>
            <a href={`#/workloads/${encodeURIComponent(w.name)}`}>{w.name}</a> {w.status.state}
          </li>
        ))}
        {on.length === 0 && <li class="empty">none</li>}
      </ul>
    </section>
  );
}
