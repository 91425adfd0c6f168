// The Simulator view: a fill comparison (`berth sim fill`) run by the server on a generated,
// uploaded or live cluster and trace, with chosen policies and seeds; progress while it runs,
// then unallocated GPU against arrived workload, one curve per policy with a band for the
// seeds' spread, and a second chart zoomed on arrived = 100 %.
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { call, errorText, useLive } from './api';

interface Profile {
  name: string;
  doc: string;
}

interface Curve {
  policy: string;
  arrived_pct: number[];
  unallocated_gpu_pct_mean: number[];
  unallocated_gpu_pct_low: number[];
  unallocated_gpu_pct_high: number[];
}

interface Stat {
  mean: number;
  sd: number;
}

export interface SimRun {
  id: number;
  state: string;
  cluster: string;
  trace: string;
  hosts: number;
  gpus: number;
  requests: number;
  policies: string[];
  seeds: number[];
  target_pct: number;
  progress: { done: number; total: number };
  seconds: number;
  error?: string;
  summary?: { policies: Record<string, { unallocated_gpu_pct_at_100: Stat; dropped: Stat }> };
  curves?: Curve[];
}

// Distinct colours and dash patterns, so curves tell apart in print and for colour-blind eyes.
const kColors = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#4b5563', '#ca8a04'];
const kDashes: number[][] = [[], [8, 4], [2, 3], [12, 4, 2, 4], [6, 6], [1, 4], [16, 6], [4, 2, 4, 8]];

function band(color: string): string {
  return `${color}26`; // the line's colour at 15 % opacity
}

function Chart(props: { curves: Curve[]; id: string; range?: [number, number]; title: string }) {
  const el = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!el.current || props.curves.length === 0) return;
    const x = props.curves[0].arrived_pct;
    const data: (number | null)[][] = [x];
    const series: uPlot.Series[] = [{ label: 'arrived %' }];
    const bands: uPlot.Band[] = [];
    props.curves.forEach((c, i) => {
      const color = kColors[i % kColors.length];
      const hi = data.length;
      data.push(c.unallocated_gpu_pct_high);
      series.push({ label: `${c.policy} max`, stroke: 'transparent', points: { show: false } });
      data.push(c.unallocated_gpu_pct_low);
      series.push({ label: `${c.policy} min`, stroke: 'transparent', points: { show: false } });
      bands.push({ series: [hi, hi + 1], fill: band(color) });
      data.push(c.unallocated_gpu_pct_mean);
      series.push({ label: c.policy, stroke: color, width: 2, dash: kDashes[i % kDashes.length], points: { show: false } });
    });
    let yRange: [number, number] | undefined;
    if (props.range) {
      // Fit the y axis to the zoomed x range, so that close curves separate.
      let lo = Infinity;
      let hi = -Infinity;
      x.forEach((v, j) => {
        if (v < props.range![0] || v > props.range![1]) return;
        for (let s = 1; s < data.length; ++s) {
          const y = data[s][j];
          if (y == null) continue;
          lo = Math.min(lo, y);
          hi = Math.max(hi, y);
        }
      });
      if (lo <= hi) yRange = [Math.max(0, lo - 0.5), hi + 0.5];
    }
    const plot = new uPlot(
      {
        title: props.title,
        width: 760,
        height: 320,
        series,
        bands,
        scales: {
          x: { time: false, range: props.range },
          y: yRange ? { range: yRange } : {},
        },
        axes: [{ label: 'arrived workload (% of GPU capacity)' }, { label: 'unallocated GPU (%)' }],
      },
      data as uPlot.AlignedData,
      el.current,
    );
    return () => plot.destroy();
  }, [props.curves, props.range?.[0], props.range?.[1]]);
  return <div ref={el} id={props.id} />;
}

function Result(props: { run: SimRun }) {
  const r = props.run;
  const pct = r.progress.total ? Math.round((100 * r.progress.done) / r.progress.total) : 0;
  return (
    <div class="card" id="sim-result">
      <p>
        Comparison {r.id}: <span class={`state state-${r.state}`} id="sim-state">{r.state}</span> · cluster{' '}
        {r.cluster} ({r.hosts} hosts, {r.gpus} GPUs) · trace {r.trace} ({r.requests} requests) · seeds{' '}
        {r.seeds.join(', ')} · {r.seconds.toFixed(1)} s
      </p>
      {r.state === 'running' && (
        <p id="sim-progress">
          {r.progress.done} of {r.progress.total} runs done ({pct} %)
        </p>
      )}
      {r.error && <p class="error">{r.error}</p>}
      {r.summary && (
        <table id="sim-summary">
          <thead>
            <tr>
              <th>policy</th>
              <th>unallocated GPU at arrived = 100 % (mean ± sd)</th>
              <th>dropped requests (mean)</th>
            </tr>
          </thead>
          <tbody>
            {r.policies.map((p) => {
              const s = r.summary!.policies[p];
              return (
                <tr key={p}>
                  <td>{p}</td>
                  <td>
                    {s.unallocated_gpu_pct_at_100.mean.toFixed(2)} % ± {s.unallocated_gpu_pct_at_100.sd.toFixed(2)}
                  </td>
                  <td>{s.dropped.mean.toFixed(0)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {r.curves && (
        <>
          <Chart curves={r.curves} id="sim-chart" title="Unallocated GPU against arrived workload (mean, band: seeds' range)" />
          {r.target_pct >= 105 && <Chart curves={r.curves} id="sim-chart-zoom" range={[95, 105]} title="Zoomed on arrived = 100 %" />}
        </>
      )}
    </div>
  );
}

async function readFile(input: HTMLInputElement | null): Promise<string | undefined> {
  const file = input?.files?.[0];
  return file ? await file.text() : undefined;
}

export function SimulatorView() {
  const profiles = useLive<{ items: Profile[] }>('/v1/sim/profiles', 600000);
  const past = useLive<{ items: SimRun[] }>('/v1/sim/fill', 5000);
  const [cluster, setCluster] = useState('openb');
  const [trace, setTrace] = useState('openb');
  const [requests, setRequests] = useState('2000');
  const [policies, setPolicies] = useState('default,fgd-ref,fgd');
  const [seeds, setSeeds] = useState('42..44');
  const [target, setTarget] = useState('130');
  const [error, setError] = useState<string | undefined>();
  const [current, setCurrent] = useState<number | undefined>();
  const [run, setRun] = useState<SimRun | undefined>();
  const clusterFile = useRef<HTMLInputElement>(null);
  const traceFile = useRef<HTMLInputElement>(null);

  // The chosen comparison, read again while it runs.
  useEffect(() => {
    if (current === undefined) return;
    let stop = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async () => {
      try {
        const r = await call<SimRun>('GET', `/v1/sim/fill/${current}`);
        if (stop) return;
        setRun(r.data);
        if (r.data.state === 'running') timer = setTimeout(poll, 500);
      } catch (e) {
        if (!stop) setError(errorText(e));
      }
    };
    poll();
    return () => {
      stop = true;
      if (timer) clearTimeout(timer);
    };
  }, [current]);

  const start = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    try {
      const body: Record<string, unknown> = {
        policies: policies.split(',').map((p) => p.trim()).filter((p) => p),
        seeds: seeds.trim(),
        target_pct: Number(target),
      };
      if (cluster === 'live') body.cluster = { live: true };
      else if (cluster === 'upload') {
        const text = await readFile(clusterFile.current);
        if (text === undefined) throw new Error('choose a cluster file to upload');
        body.cluster = { text };
      } else body.cluster = { profile: cluster };
      if (trace === 'upload') {
        const text = await readFile(traceFile.current);
        if (text === undefined) throw new Error('choose a trace file to upload');
        body.trace = { text };
      } else body.trace = { profile: trace, requests: Number(requests) };
      const r = await call<SimRun>('POST', '/v1/sim/fill', body);
      setRun(r.data);
      setCurrent(r.data.id);
    } catch (err) {
      setError(errorText(err));
    }
  };

  const names = (profiles.data?.items || []).map((p) => p.name);
  return (
    <section id="view-simulator">
      <h2>Simulator</h2>
      <p class="note">
        A fill comparison, as <code>berth sim fill</code> runs it: requests offered one at a time until the arrived
        GPU demand reaches the target share of capacity; lower unallocated GPU at arrived = 100 % is better.
      </p>
      <form class="card sim-form" id="sim-form" onSubmit={start}>
        <label>
          Cluster{' '}
          <select id="sim-cluster" value={cluster} onChange={(e) => setCluster((e.target as HTMLSelectElement).value)}>
            {names.map((n) => (
              <option key={n} value={n}>
                profile {n}
              </option>
            ))}
            <option value="live">the live cluster</option>
            <option value="upload">upload a file</option>
          </select>
        </label>
        {cluster === 'upload' && <input type="file" id="sim-cluster-file" ref={clusterFile} />}
        <label>
          Trace{' '}
          <select id="sim-trace" value={trace} onChange={(e) => setTrace((e.target as HTMLSelectElement).value)}>
            {names.map((n) => (
              <option key={n} value={n}>
                profile {n}
              </option>
            ))}
            <option value="upload">upload a file</option>
          </select>
        </label>
        {trace === 'upload' ? (
          <input type="file" id="sim-trace-file" ref={traceFile} />
        ) : (
          <label>
            requests <input id="sim-requests" size={7} value={requests} onInput={(e) => setRequests((e.target as HTMLInputElement).value)} />
          </label>
        )}
        <label>
          Policies <input id="sim-policies" size={28} value={policies} onInput={(e) => setPolicies((e.target as HTMLInputElement).value)} />
        </label>
        <label>
          Seeds <input id="sim-seeds" size={8} value={seeds} onInput={(e) => setSeeds((e.target as HTMLInputElement).value)} />
        </label>
        <label>
          Target % <input id="sim-target" size={4} value={target} onInput={(e) => setTarget((e.target as HTMLInputElement).value)} />
        </label>
        <button id="sim-run" type="submit" disabled={run?.state === 'running'}>
          Run
        </button>
      </form>
      {error && <p class="error" id="sim-error">{error}</p>}
      {run && <Result run={run} />}
      <h3>Earlier comparisons</h3>
      <ul id="sim-past">
        {(past.data?.items || []).map((r) => (
          <li key={r.id}>
            <a href="#/simulator" onClick={() => setCurrent(r.id)}>
              {r.id}
            </a>{' '}
            {r.state} · {r.cluster} · {r.trace} · {r.policies.join(', ')}
          </li>
        ))}
        {(past.data?.items || []).length === 0 && <li class="empty">none since the server started</li>}
      </ul>
    </section>
  );
}
