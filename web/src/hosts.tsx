// Hosts: a table paged by the server (filtered there by name prefix, state and labels) with
// allocated/capacity per resource, and per host a GPU map: each device, GPUs and devices of
// other classes, with its model, MIG slices or fractional shares, who holds them, its health, and
// the utilization and memory in use its agent reports.
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { useLive } from './api';
import type { GpuAssignment, Host, List, Workload } from './model';
import { FilterBox, PagedTable } from './table';
import { age, cpu, fmtMiB, mib, pct, trim } from './format';
import { go } from './nav';

function ratio(alloc: string | undefined, cap: string, parse: (t: string | undefined) => number, fmt: (v: number) => string) {
  return `${fmt(parse(alloc))}/${fmt(parse(cap))}`;
}

// Hosts' usage changes with every heartbeat and is kept in memory, not in the store, so the
// page in view is read again every five seconds instead of through a blocking query.
const kHostPollMs = 5000;

export function HostsView() {
  const [state, setState] = useState('');
  const [prefix, setPrefix] = useState('');
  const [selector, setSelector] = useState('');
  return (
    <section id="view-hosts">
      <h2>Hosts</h2>
      <div class="server-filters">
        <FilterBox id="hosts-prefix" placeholder="name starts with" onCommit={setPrefix} />
        <select id="hosts-state" value={state} onChange={(e) => setState((e.target as HTMLSelectElement).value)}>
          <option value="">any state</option>
          <option value="ready">ready</option>
          <option value="down">down</option>
        </select>
        <FilterBox id="hosts-selector" placeholder="labels, e.g. pool=gpu" onCommit={setSelector} />
      </div>
      <PagedTable<Host>
        id="hosts-table"
        path="/v1/hosts"
        filters={{ state, prefix, selector }}
        pollMs={kHostPollMs}
        rowKey={(h) => h.name}
        onRow={(h) => go(`#/hosts/${encodeURIComponent(h.name)}`)}
        empty="no hosts on this page"
        columns={[
          { title: 'Name', value: (h) => h.name },
          { title: 'State', value: (h) => h.state, render: (h) => <span class={`state state-${h.state}`}>{h.state}{h.cordoned ? ' · cordoned' : ''}</span> },
          { title: 'CPU alloc/cap', value: (h) => pct(cpu(h.allocated?.cpu), cpu(h.inventory.cpu)), render: (h) => ratio(h.allocated?.cpu, h.inventory.cpu, cpu, trim) },
          { title: 'Memory alloc/cap', value: (h) => pct(mib(h.allocated?.memory), mib(h.inventory.memory)), render: (h) => ratio(h.allocated?.memory, h.inventory.memory, mib, fmtMiB) },
          { title: 'GPUs alloc/cap', value: (h) => (h.allocated?.gpu_milli || 0) / 1000, render: (h) => `${trim((h.allocated?.gpu_milli || 0) / 1000)}/${h.inventory.gpus.length}${h.inventory.gpus.length ? ' × ' + h.inventory.gpus[0].model : ''}` },
          { title: 'Other devices', value: (h) => (h.inventory.devices || []).length },
          { title: 'Used CPU', value: (h) => cpu(h.used?.cpu), render: (h) => (h.used ? trim(cpu(h.used.cpu)) : '-') },
          { title: 'Used memory', value: (h) => mib(h.used?.memory), render: (h) => (h.used ? fmtMiB(mib(h.used.memory)) : '-') },
          { title: 'Workloads', value: (h) => h.allocated?.workloads || 0 },
          { title: 'Heartbeat', value: (h) => h.last_heartbeat || '', render: (h) => `${age(h.last_heartbeat)} ago` },
        ]}
      />
    </section>
  );
}

// What one workload holds on one GPU, for the map: "train-7 · MIG 3g.40gb (slice 4)", "½ share,
// 10Gi", "whole".
function holding(a: GpuAssignment): string {
  if (a.mig_profile) return `MIG ${a.mig_profile}${a.mig_start_slice !== undefined && a.mig_start_slice >= 0 ? ` (slice ${a.mig_start_slice})` : ''}`;
  if (a.milli >= 1000) return 'whole device';
  return `share ${trim(a.milli / 1000)}${a.memory_mib ? `, ${fmtMiB(a.memory_mib)}` : ''}`;
}

// Every device of a host, GPUs first: its class, id, model, what each holder has of it (MIG
// slices, fractional shares), its health, and the utilization and memory in use where the agent
// reports them. `on` is the host's workloads (for what each holder holds).
export function GpuMap(props: { host: Host; on: Workload[] }) {
  const h = props.host;
  const others = h.inventory.devices || [];
  if (h.inventory.gpus.length === 0 && others.length === 0) return <p class="empty">no GPUs or other devices</p>;
  const byName = new Map(props.on.map((w) => [w.name, w]));
  return (
    <div>
      <div class="gpu-map">
        {h.inventory.gpus.map((g) => {
          const a = h.allocated?.gpus.find((x) => x.index === g.index);
          const u = h.used?.gpus.find((x) => x.index === g.index);
          const share = a ? a.milli / 1000 : 0;
          const healthy = g.healthy !== false;
          return (
            <div class={`gpu${healthy ? '' : ' unhealthy'}`} key={g.index} data-gpu={g.index}>
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
              <div class="note">{healthy ? 'healthy' : `unhealthy: ${g.health || 'reported failed'}`}</div>
              {g.mig_instances && g.mig_instances.length > 0 && (
                <div class="note">MIG instances: {g.mig_instances.map((m) => `${m.profile}@${m.start_slice}`).join(', ')}</div>
              )}
              <ul class="holders">
                {a && a.holders.length > 0
                  ? a.holders.map((name) => {
                      const mine = byName.get(name)?.status.gpus.filter((x) => x.index === g.index) || [];
                      return (
                        <li key={name}>
                          <a href={`#/workloads/${encodeURIComponent(name)}`}>{name}</a>
                          {mine.length > 0 ? ` · ${mine.map(holding).join(', ')}` : ''}
                        </li>
                      );
                    })
                  : <li class="empty">idle</li>}
              </ul>
            </div>
          );
        })}
      </div>
      <h4>Every device</h4>
      <table id="device-list">
        <thead>
          <tr>
            <th>Class</th>
            <th>ID</th>
            <th>Model</th>
            <th>Holders (what each holds)</th>
            <th>Health</th>
            <th>Utilization</th>
            <th>Memory used</th>
          </tr>
        </thead>
        <tbody>
          {h.inventory.gpus.map((g) => {
            const a = h.allocated?.gpus.find((x) => x.index === g.index);
            const u = h.used?.gpus.find((x) => x.index === g.index);
            const holders = (a?.holders || []).map((name) => {
              const mine = byName.get(name)?.status.gpus.filter((x) => x.index === g.index) || [];
              return mine.length ? `${name} (${mine.map(holding).join(', ')})` : name;
            });
            return (
              <tr key={`gpu-${g.index}`} data-device={g.uuid || `gpu-${g.index}`}>
                <td>nvidia.com/gpu</td>
                <td>{g.uuid || `#${g.index}`}</td>
                <td>
                  {g.model}, {g.memory}
                  {g.mig_enabled ? ', MIG' : ''}
                </td>
                <td>{holders.join('; ') || '-'}</td>
                <td>{g.healthy === false ? `unhealthy: ${g.health || ''}` : 'healthy'}</td>
                <td>{u ? `${u.utilization_percent}%` : 'not reported'}</td>
                <td>{u ? fmtMiB(mib(u.memory_used)) : 'not reported'}</td>
              </tr>
            );
          })}
          {others.map((d) => {
            const holders = (h.allocated?.devices || []).filter((x) => x.class === d.class && x.id === d.id && x.holder).map((x) => x.holder);
            return (
              <tr key={`${d.class}/${d.id}`} data-device={`${d.class}/${d.id}`}>
                <td>{d.class}</td>
                <td>{d.id}</td>
                <td>-</td>
                <td>
                  {holders.length
                    ? holders.map((name) => (
                        <a key={name} href={`#/workloads/${encodeURIComponent(name)}`}>
                          {name}
                        </a>
                      ))
                    : '-'}
                </td>
                <td>{d.healthy ? 'healthy' : `unhealthy: ${d.health || ''}`}</td>
                <td>not reported</td>
                <td>not reported</td>
              </tr>
            );
          })}
        </tbody>
      </table>
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

// A host's workloads are read by the server-side `host` filter, at most this many.
const kHostWorkloads = 500;

export function HostDetail(props: { name: string }) {
  const path = `/v1/hosts/${encodeURIComponent(props.name)}`;
  const live = useLive<Host>(path, kHostPollMs);
  const onHost = useLive<List<Workload>>(`/v1/workloads?host=${encodeURIComponent(props.name)}&limit=${kHostWorkloads}`);
  const h = live.data;
  if (!h) {
    return (
      <section id="view-host">
        <h2>Host {props.name}</h2>
        {live.error ? <p class="error">{live.error}</p> : <p class="empty">loading</p>}
      </section>
    );
  }
  const on = onHost.data?.items || [];
  return (
    <section id="view-host">
      <h2>
        Host {h.name} <span class={`state state-${h.state}`}>{h.state}</span>
        {h.cordoned ? <span class="state"> cordoned</span> : ''}
      </h2>
      {live.error && <p class="error">{live.error}</p>}
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
      <GpuMap host={h} on={on} />
      <h3>Usage, last hour</h3>
      <UsageChart host={h} />
      <h3>Workloads on this host</h3>
      <ul id="host-workloads">
        {on.map((w) => (
          <li key={w.name}>
            <a href={`#/workloads/${encodeURIComponent(w.name)}`}>{w.name}</a> {w.status.state}
          </li>
        ))}
        {on.length === 0 && <li class="empty">none</li>}
        {onHost.data?.continue && <li class="note">and more: the first {kHostWorkloads} are shown</li>}
      </ul>
    </section>
  );
}
