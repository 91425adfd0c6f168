// A table for long lists: a filter box, columns sortable by clicking their header, and only the
// rows in view rendered (fixed row height), so 100,000 rows scroll as easily as 10.
import type { ComponentChildren } from 'preact';
import { useMemo, useState } from 'preact/hooks';

export interface Column<T> {
  title: string;
  value: (row: T) => string | number; // what sorting and filtering read
  render?: (row: T) => ComponentChildren;
}

const kRowHeight = 30;
const kViewRows = 25;

export function Table<T>(props: {
  id: string;
  rows: T[];
  columns: Column<T>[];
  rowKey: (row: T) => string;
  onRow?: (row: T) => void;
  empty?: string;
}) {
  const [filter, setFilter] = useState('');
  const [sort, setSort] = useState<{ col: number; desc: boolean }>({ col: 0, desc: false });
  const [top, setTop] = useState(0);
  const shown = useMemo(() => {
    const f = filter.trim().toLowerCase();
    let rows = props.rows;
    if (f) {
      rows = rows.filter((r) =>
        props.columns.some((c) => String(c.value(r)).toLowerCase().includes(f)),
      );
    }
    const col = props.columns[sort.col];
    if (col) {
      rows = [...rows].sort((a, b) => {
        const x = col.value(a);
        const y = col.value(b);
        const d = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
        return sort.desc ? -d : d;
      });
    }
    return rows;
  }, [props.rows, props.columns, filter, sort]);
  const first = Math.max(0, Math.floor(top / kRowHeight) - 5);
  const last = Math.min(shown.length, first + kViewRows + 10);
  return (
    <div class="table" id={props.id}>
      <input
        class="filter"
        placeholder="filter"
        value={filter}
        onInput={(e) => setFilter((e.target as HTMLInputElement).value)}
      />
      <span class="count">
        {shown.length} of {props.rows.length}
      </span>
      <div
        class="scroll"
        style={{ maxHeight: `${kRowHeight * kViewRows}px` }}
        onScroll={(e) => setTop((e.target as HTMLElement).scrollTop)}
      >
        <table>
          <thead>
            <tr>
              {props.columns.map((c, i) => (
                <th
                  key={c.title}
                  onClick={() => setSort({ col: i, desc: sort.col === i ? !sort.desc : false })}
                >
                  {c.title}
                  {sort.col === i ? (sort.desc ? ' ▼' : ' ▲') : ''}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {first > 0 && <tr style={{ height: `${first * kRowHeight}px` }} />}
            {shown.slice(first, last).map((r) => (
              <tr
                key={props.rowKey(r)}
                data-key={props.rowKey(r)}
                class={props.onRow ? 'link' : ''}
                style={{ height: `${kRowHeight}px` }}
                onClick={() => props.onRow && props.onRow(r)}
              >
                {props.columns.map((c) => (
                  <td key={c.title}>{c.render ? c.render(r) : c.value(r)}</td>
                ))}
              </tr>
            ))}
            {last < shown.length && <tr style={{ height: `${(shown.length - last) * kRowHeight}px` }} />}
          </tbody>
        </table>
        {shown.length === 0 && <p class="empty">{props.empty || 'nothing here'}</p>}
      </div>
    </div>
  );
}
