// Pending: the pending workloads, a page at a time (the server filters by state=pending), each
// with its explanation from the scheduler (every failing check with figures, and what would
// make it fit), asked again whenever the page changes.
import { useEffect, useState } from 'preact/hooks';
import { call, errorText, useLive } from './api';
import { gpuText, type Summary, type Workload } from './model';
import { usePagedList } from './table';

interface Explanation {
  explanation: string;
  failing?: { check: string; hosts: number; detail: string }[];
  to_fit?: string[];
}

// Explanations are asked for the first this many pending workloads of a page; the rest show
// the scheduler's one-line reason.
const kExplainAtMost = 50;
const kPendingFilter = { state: 'pending' };

export function PendingView() {
  const { live, pager } = usePagedList<Workload>('pending', '/v1/workloads', kPendingFilter, undefined, 25);
  const summary = useLive<Summary>('/v1/summary', 10000);
  const pending = live.data?.items || [];
  const total = summary.data?.workloads.by_state.pending;
  const names = pending.map((w) => w.name).join('\n');
  const [why, setWhy] = useState<Record<string, Explanation | string>>({});
  useEffect(() => {
    const ctl = new AbortController();
    (async () => {
      const out: Record<string, Explanation | string> = {};
      for (const w of pending.slice(0, kExplainAtMost)) {
        try {
          const r = await call<Explanation>('GET', `/v1/workloads/${encodeURIComponent(w.name)}/explain`, undefined, ctl.signal);
          out[w.name] = r.data;
        } catch (e) {
          if (ctl.signal.aborted) return;
          out[w.name] = errorText(e);
        }
      }
      if (!ctl.signal.aborted) setWhy(out);
    })();
    return () => ctl.abort();
  }, [names, live.index]);
  return (
    <section id="view-pending">
      <h2>Pending{total !== undefined ? ` (${total})` : ''}</h2>
      {pager}
      {live.data && pending.length === 0 && <p class="empty">nothing pending on this page</p>}
      {pending.map((w, i) => {
        const e = why[w.name];
        return (
          <div class="card pending" key={w.name} data-workload={w.name}>
            <h3>
              <a href={`#/workloads/${encodeURIComponent(w.name)}`}>{w.name}</a>{' '}
              <span class="note">
                asks cpu {w.spec.resources.cpu}, memory {w.spec.resources.memory}, gpu {gpuText(w.spec.resources.gpu)}
                {w.spec.tenant ? `, tenant ${w.spec.tenant}` : ''}
              </span>
            </h3>
            {i >= kExplainAtMost && <p class="note">{w.status.explanation || ''}</p>}
            {typeof e === 'string' && <p class="error">{e}</p>}
            {e && typeof e !== 'string' && (
              <div>
                <ul class="checks">
                  {(e.failing || []).map((f) => (
                    <li key={f.check + f.detail} data-check={f.check}>
                      <b>{f.check}</b>: {f.detail}
                      {f.check !== 'quota' && f.hosts > 0 ? ` (${f.hosts} hosts)` : ''}
                    </li>
                  ))}
                </ul>
                {(e.to_fit || []).map((t) => (
                  <p class="fit" key={t}>
                    to fit: {t}
                  </p>
                ))}
                {!e.failing && <p>{e.explanation}</p>}
              </div>
            )}
          </div>
        );
      })}
    </section>
  );
}
