// The dashboard's one way to the REST API: the bearer token (kept in the tab's sessionStorage,
// never in a URL), JSON calls, and live data through the API's blocking queries
// (?index=N&wait=30s): one request parked on the server per view, answered when something
// changes, instead of polling.
import { useEffect, useState } from 'preact/hooks';

const kTokenKey = 'berth.token';

export function getToken(): string | null {
  return sessionStorage.getItem(kTokenKey);
}

export function setToken(token: string | null): void {
  if (token) sessionStorage.setItem(kTokenKey, token);
  else sessionStorage.removeItem(kTokenKey);
  window.dispatchEvent(new Event('berth-token'));
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface Reply<T> {
  data: T;
  index: number; // X-Berth-Index, -1 when absent
}

// One request. A 401 forgets the token, which returns the page to the sign-in form.
export async function call<T>(
  method: string,
  path: string,
  body?: unknown,
  signal?: AbortSignal,
  token: string | null = getToken(),
): Promise<Reply<T>> {
  const headers: Record<string, string> = {};
  if (token) headers['Authorization'] = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
    cache: 'no-store',
    credentials: 'omit',
  });
  const type = res.headers.get('Content-Type') || '';
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`;
    try {
      const j = await res.json();
      if (j && j.error && j.error.message) message = j.error.message;
    } catch {
      // not a JSON error body: keep the status line
    }
    if (res.status === 401 && token === getToken()) setToken(null);
    throw new ApiError(res.status, message);
  }
  const data = (type.includes('json') ? await res.json() : await res.text()) as T;
  const index = Number(res.headers.get('X-Berth-Index') ?? '-1');
  return { data, index: Number.isFinite(index) ? index : -1 };
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    });
  });

export interface Live<T> {
  data?: T;
  error?: string;
  index: number;
}

// The value at `path`, kept current: with `pollMs`, read again that often (routes without
// blocking queries); without, a blocking query after each answer, parked on the server until
// something under the route changes past the answer's X-Berth-Index. null pauses.
export function useLive<T>(path: string | null, pollMs?: number): Live<T> {
  const [state, setState] = useState<Live<T>>({ index: 0 });
  useEffect(() => {
    setState({ index: 0 });
    if (!path) return;
    const ctl = new AbortController();
    (async () => {
      let index = 0;
      while (!ctl.signal.aborted) {
        const started = Date.now();
        try {
          const sep = path.includes('?') ? '&' : '?';
          const url = !pollMs && index > 0 ? `${path}${sep}index=${index}&wait=30s` : path;
          const r = await call<T>('GET', url, undefined, ctl.signal);
          if (ctl.signal.aborted) return;
          setState({ data: r.data, index: r.index });
          if (pollMs || r.index <= 0) {
            await sleep(pollMs || 5000, ctl.signal);
          } else {
            // A blocking query that answered at once with nothing new (history compacted):
            // wait a little before asking again.
            if (r.index === index && Date.now() - started < 200) await sleep(1000, ctl.signal);
            index = r.index;
          }
        } catch (e) {
          if (ctl.signal.aborted) return;
          setState((s) => ({ ...s, error: errorText(e) }));
          await sleep(2000, ctl.signal);
        }
      }
    })();
    return () => ctl.abort();
  }, [path, pollMs]);
  return state;
}

export interface BerthEvent {
  revision: number;
  time: string;
  kind: string;
  object: string;
  type: string;
  message: string;
}

// The event log, live: the last `keep` events, newest last, extended by blocking queries.
export function useEvents(keep = 2000): { events: BerthEvent[]; error?: string } {
  const [events, setEvents] = useState<BerthEvent[]>([]);
  const [error, setError] = useState<string | undefined>();
  useEffect(() => {
    const ctl = new AbortController();
    (async () => {
      let after = 0;
      let first = true;
      while (!ctl.signal.aborted) {
        try {
          const url = first
            ? '/v1/events?limit=10000'
            : `/v1/events?index=${after}&wait=30s&limit=1000`;
          const r = await call<{ items: BerthEvent[]; revision: number }>(
            'GET',
            url,
            undefined,
            ctl.signal,
          );
          if (ctl.signal.aborted) return;
          const items = r.data.items || [];
          if (items.length > 0) after = items[items.length - 1].revision;
          else if (first) after = Math.max(after, r.index);
          first = false;
          setError(undefined);
          if (items.length > 0) setEvents((old) => old.concat(items).slice(-keep));
          // Nothing new (the wait ended, or old events were trimmed): pause before asking again.
          else await sleep(500, ctl.signal);
        } catch (e) {
          if (ctl.signal.aborted) return;
          setError(errorText(e));
          await sleep(2000, ctl.signal);
        }
      }
    })();
    return () => ctl.abort();
  }, [keep]);
  return { events, error };
}
