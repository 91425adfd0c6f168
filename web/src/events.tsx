// Events: the event log, live (blocking queries), newest first, filterable.
import { useState } from 'preact/hooks';
import type { BerthEvent } from './api';

export function EventsView(props: { events: BerthEvent[]; error?: string }) {
  const [filter, setFilter] = useState('');
  const f = filter.trim().toLowerCase();
  const shown = props.events
    .filter((e) => !f || `${e.kind} ${e.object} ${e.type} ${e.message}`.toLowerCase().includes(f))
    .slice(-500)
    .reverse();
  return (
    <section id="view-events">
      <h2>Events</h2>
      {props.error && <p class="error">{props.error}</p>}
      <input class="filter" placeholder="filter" value={filter} onInput={(e) => setFilter((e.target as HTMLInputElement).value)} />
      <table id="events-table">
        <thead>
          <tr>
            <th>Time</th>
            <th>Object</th>
            <th>Type</th>
            <th>Message</th>
          </tr>
        </thead>
        <tbody>
          {shown.map((e) => (
            <tr key={e.revision} data-revision={e.revision}>
              <td>{e.time}</td>
              <td>
                {e.kind === 'workload' ? <a href={`#/workloads/${encodeURIComponent(e.object)}`}>{e.kind} {e.object}</a> : `${e.kind} ${e.object}`}
              </td>
              <td>{e.type}</td>
              <td>{e.message}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {shown.length === 0 && <p class="empty">no events</p>}
    </section>
  );
}
