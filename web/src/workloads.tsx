// Workloads: the table, and a detail page with spec, status, events, live logs (and a VM's
// serial console), stats charts, and actions behind a confirmation.
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { call, errorText, getToken, useLive, type BerthEvent } from './api';
import { age, cpu, mib } from './format';
import { gpuText, type Workload } from './model';
import { go } from './nav';
import { FilterBox, PagedTable } from './table';

export const kWorkloadStates = ['pending', 'scheduled', 'starting', 'running', 'paused', 'stopping', 'stopped', 'failed'];

// The table of workloads, one page at a time, filtered by the server (name prefix, state, kind,
// host, tenant, labels) and kept live by a blocking query on the page in view.
export function WorkloadsView() {
  const [f, setF] = useState<Record<string, string>>({});
  const set = (k: string) => (v: string) => setF((old) => ({ ...old, [k]: v }));
  return (
    <section id="view-workloads">
      <h2>Workloads</h2>
      <div class="server-filters">
        <FilterBox id="workloads-prefix" placeholder="name starts with" onCommit={set('prefix')} />
        <select id="workloads-state" value={f.state || ''} onChange={(e) => set('state')((e.target as HTMLSelectElement).value)}>
          <option value="">any state</option>
          {kWorkloadStates.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
        <select id="workloads-kind" value={f.kind || ''} onChange={(e) => set('kind')((e.target as HTMLSelectElement).value)}>
          <option value="">any kind</option>
          <option value="process">process</option>
          <option value="container">container</option>
          <option value="vm">vm</option>
        </select>
        <FilterBox id="workloads-host" placeholder="on host" onCommit={set('host')} />
        <FilterBox id="workloads-tenant" placeholder="tenant" onCommit={set('tenant')} />
        <FilterBox id="workloads-selector" placeholder="labels, e.g. app=web" onCommit={set('selector')} />
      </div>
      <PagedTable<Workload>
        id="workloads-table"
        path="/v1/workloads"
        filters={f}
        rowKey={(w) => w.name}
        onRow={(w) => go(`#/workloads/${encodeURIComponent(w.name)}`)}
        empty="no workloads on this page"
        columns={[
          { title: 'Name', value: (w) => w.name },
          { title: 'Kind', value: (w) => w.kind },
          { title: 'State', value: (w) => w.status.state, render: (w) => <span class={`state state-${w.status.state}`}>{w.status.state}</span> },
          { title: 'Host', value: (w) => w.status.host || '-' },
          { title: 'Tenant', value: (w) => w.spec.tenant || '-' },
          { title: 'CPU', value: (w) => cpu(w.spec.resources.cpu), render: (w) => w.spec.resources.cpu },
          { title: 'Memory', value: (w) => mib(w.spec.resources.memory), render: (w) => w.spec.resources.memory },
          { title: 'GPU', value: (w) => gpuText(w.spec.resources.gpu) },
          { title: 'Age', value: (w) => w.created_at || '', render: (w) => age(w.created_at) },
        ]}
      />
      <ServicesTable />
      <JobsTable />
    </section>
  );
}

interface Service {
  name: string;
  created_at: string | null;
  spec: { replicas: number; port?: number; template: { kind: string; resources?: { cpu?: string; memory?: string } } };
  status: {
    replicas: { workload: string; host: string; state: string; ready: boolean }[];
    rollout: { state: string; message: string };
  };
}

// Services are read a page at a time, again every five seconds (their list takes no blocking
// query); a click lists a service's replicas, each a link to its workload.
const kServicePollMs = 5000;

export function ServicesTable() {
  const [open, setOpen] = useState<Service | null>(null);
  return (
    <div class="card">
      <h3>Services</h3>
      <PagedTable<Service>
        id="services-table"
        path="/v1/services"
        pollMs={kServicePollMs}
        rowKey={(s) => s.name}
        onRow={(s) => setOpen(open && open.name === s.name ? null : s)}
        empty="no services on this page"
        columns={[
          { title: 'Name', value: (s) => s.name },
          { title: 'Ready/replicas', value: (s) => s.spec.replicas, render: (s) => `${s.status.replicas.filter((r) => r.ready).length}/${s.spec.replicas}` },
          { title: 'Rollout', value: (s) => s.status.rollout.state },
          { title: 'Kind', value: (s) => s.spec.template.kind },
          { title: 'Port', value: (s) => s.spec.port || '-' },
          { title: 'Age', value: (s) => s.created_at || '', render: (s) => age(s.created_at) },
        ]}
      />
      {open && (
        <ul id="service-replicas">
          {open.status.replicas.map((r) => (
            <li key={r.workload}>
              <a href={`#/workloads/${encodeURIComponent(r.workload)}`}>{r.workload}</a> {r.state}
              {r.host ? ` on ${r.host}` : ''}
              {r.ready ? ' · ready' : ''}
            </li>
          ))}
          {open.status.replicas.length === 0 && <li class="empty">no replicas</li>}
        </ul>
      )}
    </div>
  );
}

interface Job {
  name: string;
  created_at: string | null;
  spec: { parallelism: number; completions?: number; template: { kind: string } };
  status: {
    state: string;
    message: string;
    attempt: number;
    retries: number;
    succeeded: number;
    tasks: { workload: string; index: number; attempt: number; host: string; state: string; current: boolean; exit_code: number | null }[];
  };
}

// Training jobs, read like services; a click lists the tasks of the job's current attempt, each
// a link to its workload (and so to its logs).
export function JobsTable() {
  const [open, setOpen] = useState<Job | null>(null);
  const tasks = open ? open.status.tasks.filter((t) => t.current) : [];
  return (
    <div class="card">
      <h3>Jobs</h3>
      <PagedTable<Job>
        id="jobs-table"
        path="/v1/jobs"
        pollMs={kServicePollMs}
        rowKey={(j) => j.name}
        onRow={(j) => setOpen(open && open.name === j.name ? null : j)}
        empty="no jobs on this page"
        columns={[
          { title: 'Name', value: (j) => j.name },
          { title: 'State', value: (j) => j.status.state },
          { title: 'Tasks', value: (j) => j.spec.parallelism },
          { title: 'Succeeded', value: (j) => j.status.succeeded },
          { title: 'Attempt', value: (j) => j.status.attempt, render: (j) => `${j.status.attempt} (${j.status.retries} retries)` },
          { title: 'Kind', value: (j) => j.spec.template.kind },
          { title: 'Age', value: (j) => j.created_at || '', render: (j) => age(j.created_at) },
          { title: 'Message', value: (j) => j.status.message },
        ]}
      />
      {open && (
        <ul id="job-tasks">
          {tasks.map((t) => (
            <li key={t.workload}>
              <a href={`#/workloads/${encodeURIComponent(t.workload)}`}>{t.workload}</a> rank {t.index} {t.state}
              {t.host ? ` on ${t.host}` : ''}
              {t.exit_code !== null ? ` · exit ${t.exit_code}` : ''}
            </li>
          ))}
          {tasks.length === 0 && <li class="empty">no tasks in this attempt</li>}
        </ul>
      )}
    </div>
  );
}

// A log or console, streamed while the page is open (follow=true), the last 256 KiB kept.
function Stream(props: { path: string; id: string }) {
  const [text, setText] = useState('');
  const [error, setError] = useState<string | undefined>();
  useEffect(() => {
    const ctl = new AbortController();
    setText('');
    setError(undefined);
    (async () => {
      try {
        const res = await fetch(props.path, {
          headers: { Authorization: `Bearer ${getToken()}` },
          signal: ctl.signal,
          cache: 'no-store',
          credentials: 'omit',
        });
        if (!res.ok || !res.body) {
          let message = `${res.status} ${res.statusText}`;
          try {
            message = (await res.json()).error.message;
          } catch {
            // keep the status line
          }
          setError(message);
          return;
        }
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          const chunk = decoder.decode(value, { stream: true });
          setText((t) => (t + chunk).slice(-256 * 1024));
        }
      } catch (e) {
        if (!ctl.signal.aborted) setError(errorText(e));
      }
    })();
    return () => ctl.abort();
  }, [props.path]);
  return (
    <div>
      {error && <p class="error">{error}</p>}
      <pre class="log" id={props.id}>
        {text}
      </pre>
    </div>
  );
}

interface Stats {
  cpu_user_ms?: number;
  cpu_system_ms?: number;
  rss_bytes?: number;
  disk_read_bytes?: number;
  disk_write_bytes?: number;
  net_rx_bytes?: number;
  net_tx_bytes?: number;
}

// The I/O counters the stats carry, charted as MiB per second; a counter the driver does not keep
// (a process has no network of its own) stays empty.
const kIoCounters: { key: keyof Stats; label: string; stroke: string }[] = [
  { key: 'disk_read_bytes', label: 'disk read', stroke: '#7c3aed' },
  { key: 'disk_write_bytes', label: 'disk write', stroke: '#db2777' },
  { key: 'net_rx_bytes', label: 'net received', stroke: '#0891b2' },
  { key: 'net_tx_bytes', label: 'net sent', stroke: '#ca8a04' },
];

// CPU (cores, from the counters' growth) and resident memory, and storage and network
// throughput, over the last minutes, sampled every two seconds while the page is open.
function StatsChart(props: { name: string }) {
  const el = useRef<HTMLDivElement>(null);
  const ioEl = useRef<HTMLDivElement>(null);
  const [error, setError] = useState<string | undefined>();
  useEffect(() => {
    const times: number[] = [], cores: (number | null)[] = [], rss: (number | null)[] = [];
    const io: (number | null)[][] = kIoCounters.map(() => []);
    let last: { t: number; ms: number; counters: (number | undefined)[] } | null = null;
    let plot: uPlot | null = null;
    let ioPlot: uPlot | null = null;
    const ctl = new AbortController();
    const sample = async () => {
      try {
        const r = await call<Stats>('GET', `/v1/workloads/${encodeURIComponent(props.name)}/stats`, undefined, ctl.signal);
        const t = Date.now() / 1000;
        const ms = (r.data.cpu_user_ms || 0) + (r.data.cpu_system_ms || 0);
        const counters = kIoCounters.map((c) => r.data[c.key]);
        times.push(t);
        cores.push(last ? Math.max(0, (ms - last.ms) / 1000 / (t - last.t)) : null);
        rss.push(r.data.rss_bytes !== undefined ? r.data.rss_bytes / 1048576 : null);
        counters.forEach((v, i) => {
          const was = last ? last.counters[i] : undefined;
          io[i].push(last && v !== undefined && was !== undefined && v >= was ? (v - was) / 1048576 / (t - last.t) : null);
        });
        last = { t, ms, counters };
        if (times.length > 300) [times, cores, rss, ...io].forEach((a) => a.shift());
        setError(undefined);
        if (!plot && el.current && ioEl.current) {
          plot = new uPlot(
            {
              width: 640,
              height: 200,
              series: [{}, { label: 'CPU (cores)', stroke: '#2563eb', scale: 'cpu' }, { label: 'RSS (MiB)', stroke: '#16a34a', scale: 'mib' }],
              axes: [{}, { scale: 'cpu' }, { scale: 'mib', side: 1 }],
            },
            [times, cores, rss],
            el.current,
          );
          ioPlot = new uPlot(
            {
              width: 640,
              height: 160,
              series: [{}, ...kIoCounters.map((c) => ({ label: `${c.label} (MiB/s)`, stroke: c.stroke }))],
            },
            [times, ...io],
            ioEl.current,
          );
        } else if (plot && ioPlot) {
          plot.setData([times, cores, rss]);
          ioPlot.setData([times, ...io]);
        }
      } catch (e) {
        if (!ctl.signal.aborted) setError(errorText(e));
      }
    };
    sample();
    const timer = setInterval(sample, 2000);
    return () => {
      ctl.abort();
      clearInterval(timer);
      if (plot) plot.destroy();
      if (ioPlot) ioPlot.destroy();
    };
  }, [props.name]);
  return (
    <div>
      {error && <p class="note">stats: {error}</p>}
      <div ref={el} id="stats-chart" />
      <div ref={ioEl} id="io-chart" />
    </div>
  );
}

const kActions: Record<string, string[]> = {
  running: ['stop', 'pause', 'delete'],
  paused: ['resume', 'stop', 'delete'],
  stopped: ['start', 'delete'],
  failed: ['start', 'delete'],
  pending: ['stop', 'delete'],
};

export function WorkloadDetail(props: { name: string; events: BerthEvent[] }) {
  const path = `/v1/workloads/${encodeURIComponent(props.name)}`;
  const live = useLive<Workload>(path);
  const [confirm, setConfirm] = useState<string | null>(null);
  const [result, setResult] = useState<string | undefined>();
  const w = live.data;
  const act = async (action: string) => {
    setConfirm(null);
    try {
      if (action === 'delete') {
        await call('DELETE', path);
        setResult(`delete requested`);
      } else {
        await call('POST', `${path}/actions/${action}`);
        setResult(`${action} requested`);
      }
    } catch (e) {
      setResult(`${action} refused: ${errorText(e)}`);
    }
  };
  const events = props.events.filter((e) => e.kind === 'workload' && e.object === props.name);
  const state = w?.status.state || '';
  return (
    <section id="view-workload">
      <h2>
        Workload {props.name} {w && <span class={`state state-${state}`} id="workload-state">{state}</span>}
      </h2>
      {live.error && <p class="error">{live.error}</p>}
      {w && (
        <div>
          <div class="actions">
            {(kActions[state] || ['stop', 'delete']).map((a) => (
              <button key={a} data-action={a} onClick={() => setConfirm(a)}>
                {a}
              </button>
            ))}
            {result && <span class="note" id="action-result">{result}</span>}
          </div>
          {confirm && (
            <div class="modal" role="dialog" id="confirm">
              <p>
                {confirm} workload <b>{props.name}</b>?
              </p>
              <button id="confirm-yes" onClick={() => act(confirm)}>
                yes, {confirm}
              </button>
              <button id="confirm-no" onClick={() => setConfirm(null)}>
                cancel
              </button>
            </div>
          )}
          <div class="cards">
            <div class="card">
              <h3>Status</h3>
              <p>
                host {w.status.host || '-'} · desired {w.status.desired} · started {age(w.status.started_at)} ago
              </p>
              {w.status.reason && <p>reason: {w.status.reason}</p>}
              {w.status.explanation && <p>pending: {w.status.explanation}</p>}
            </div>
            <div class="card">
              <h3>Spec</h3>
              <pre class="spec">{JSON.stringify(w.spec, null, 2)}</pre>
            </div>
          </div>
          <h3>Stats</h3>
          {state === 'running' ? <StatsChart name={props.name} /> : <p class="empty">not running</p>}
          <h3>Logs</h3>
          <Stream path={`${path}/logs?stream=stdout&follow=true`} id="logs" />
          {w.kind === 'vm' && (
            <div>
              <h3>Serial console</h3>
              <Stream path={`${path}/console?follow=true`} id="console" />
            </div>
          )}
        </div>
      )}
      <h3>Events</h3>
      <ul class="events" id="workload-events">
        {events.map((e) => (
          <li key={e.revision}>
            {e.time} <b>{e.type}</b> {e.message}
          </li>
        ))}
      </ul>
    </section>
  );
}
