// The dashboard's shell: sign-in with a token (kept in sessionStorage, never in a URL), the
// navigation, and the views, fed by live queries of the REST API.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, call, errorText, getToken, setToken, useEvents } from './api';
import { ClusterView } from './cluster';
import { EventsView } from './events';
import { HostDetail, HostsView } from './hosts';
import { route } from './nav';
import { PendingView } from './pending';
import { SimulatorView } from './simulator';
import { StorageView } from './storage';
import { WorkloadDetail, WorkloadsView } from './workloads';
import './style.css';

function SignIn() {
  const [text, setText] = useState('');
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    const token = text.trim();
    if (!token) return;
    setBusy(true);
    setError(undefined);
    try {
      // The token must open the API before the page keeps it.
      await call('GET', '/v1/hosts?limit=1', undefined, undefined, token);
      setToken(token);
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401 ? `refused: ${err.message}` : errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="signin" id="signin" onSubmit={submit}>
      <h1>Berth</h1>
      <p>
        Paste a token: the admin token (<code>DATA_DIR/admin.token</code>), or the read-only token
        (<code>DATA_DIR/read.token</code>) to watch without acting. It is kept in this tab only.
      </p>
      <input
        id="token"
        type="password"
        autocomplete="off"
        placeholder="token"
        value={text}
        onInput={(e) => setText((e.target as HTMLInputElement).value)}
      />
      <button id="signin-button" type="submit" disabled={busy}>
        Sign in
      </button>
      {error && <p class="error" id="signin-error">{error}</p>}
    </form>
  );
}

const kViews: [string, string][] = [
  ['cluster', 'Cluster'],
  ['hosts', 'Hosts'],
  ['workloads', 'Workloads'],
  ['pending', 'Pending'],
  ['storage', 'Disks and networks'],
  ['events', 'Events'],
  ['simulator', 'Simulator'],
];

function Dashboard() {
  const [path, setPath] = useState(route());
  useEffect(() => {
    const on = () => setPath(route());
    window.addEventListener('hashchange', on);
    on(); // the hash may have changed between the first render and this effect
    return () => window.removeEventListener('hashchange', on);
  }, []);
  // Each view reads what it shows, a page or a summary at a time; only the event log is shared
  // (the Events view and a workload's events), kept live by one blocking query.
  const { events, error: eventsError } = useEvents();
  const [view, arg] = path;
  let body;
  switch (view) {
    case 'hosts':
      body = arg ? <HostDetail name={arg} /> : <HostsView />;
      break;
    case 'workloads':
      body = arg ? <WorkloadDetail name={arg} events={events} /> : <WorkloadsView />;
      break;
    case 'pending':
      body = <PendingView />;
      break;
    case 'storage':
      body = <StorageView />;
      break;
    case 'events':
      body = <EventsView events={events} error={eventsError} />;
      break;
    case 'simulator':
      body = <SimulatorView />;
      break;
    default:
      body = <ClusterView />;
  }
  return (
    <div class="shell">
      <nav>
        <span class="brand">Berth</span>
        {kViews.map(([id, title]) => (
          <a key={id} id={`nav-${id}`} href={`#/${id}`} class={view === id || (!view && id === 'cluster') ? 'active' : ''}>
            {title}
          </a>
        ))}
        <button id="signout" onClick={() => setToken(null)}>
          Sign out
        </button>
      </nav>
      <main>{body}</main>
    </div>
  );
}

function App() {
  const [token, setTok] = useState(getToken());
  useEffect(() => {
    const on = () => setTok(getToken());
    window.addEventListener('berth-token', on);
    return () => window.removeEventListener('berth-token', on);
  }, []);
  return token ? <Dashboard /> : <SignIn />;
}

render(<App />, document.getElementById('app')!);
