// Tables for long lists. `Table` shows rows it is given: a filter box, columns sortable by
// clicking their header, and only the rows in view rendered (fixed row height). `PagedTable`
// reads one page at a time from a list of the API (`limit` and `continue`), with the filters
// the server applies, kept current by a blocking query (or by reading the page again, for
// lists without one): the browser never holds more than a page, whatever the length of the list.
import type { ComponentChildren } from 'preact';
import { useMemo, useState } from 'preact/hooks';
import { useLive, type Live } from './api';

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
  filterHint?: string; // the filter box's placeholder
  countNote?: string; // after "N of M"
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
        placeholder={props.filterHint || 'filter'}
        value={filter}
        onInput={(e) => setFilter((e.target as HTMLInputElement).value)}
      />
      <span class="count">
        {shown.length} of {props.rows.length}
        {props.countNote || ''}
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

// A page of a list as the API answers it.
export interface Page<T> {
  items: T[];
  revision?: number;
  continue?: string;
}

export const kPageSizes = [25, 100, 500];

// The query string of `params` with the empty values left out ("" when none is left).
export function queryOf(params: Record<string, string | number | undefined>): string {
  const parts = Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== '')
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
  return parts.join('&');
}

// One page of `path` at a time, and the controls that move through the pages: `filters` go to
// the server (a change starts again at the first page). The page stays live: a blocking query
// on it, or with `pollMs` a fresh read that often. `id` names the controls (ID-prev, ID-next,
// ID-page, ID-size).
export function usePagedList<T>(
  id: string,
  path: string,
  filters: Record<string, string>,
  pollMs?: number,
  pageSize = 100,
): { live: Live<Page<T>>; pager: ComponentChildren } {
  const [size, setSize] = useState(pageSize);
  // The `continue` token of every page up to the current one ("" for the first page), for the
  // list, filters and page size they were read with: any change starts again at the first page.
  const key = `${path}?${queryOf(filters)}#${size}`;
  const [nav, setNav] = useState<{ key: string; cursors: string[] }>({ key, cursors: [''] });
  const cursors = nav.key === key ? nav.cursors : [''];
  const setCursors = (c: string[]) => setNav({ key, cursors: c });
  const at = cursors.length - 1;
  const query = queryOf({ ...filters, limit: size, continue: cursors[at] });
  const live = useLive<Page<T>>(`${path}?${query}`, pollMs);
  const page = live.data;
  const n = page?.items.length || 0;
  const first = at * size;
  const sizes = kPageSizes.includes(size) ? kPageSizes : [size, ...kPageSizes];
  const pager = (
    <div class="pager">
      <button id={`${id}-prev`} disabled={at === 0} onClick={() => setCursors(cursors.slice(0, -1))}>
        ◀ previous
      </button>
      <span id={`${id}-page`} class="count">
        {' '}page {at + 1}
        {page ? ` · ${n ? `${first + 1}–${first + n}` : 'none'}${page.continue ? ', more follow' : ''}` : ' · loading'}{' '}
      </span>
      <button id={`${id}-next`} disabled={!page?.continue} onClick={() => page?.continue && setCursors([...cursors, page.continue])}>
        next ▶
      </button>
      <label class="count">
        {' '}per page{' '}
        <select id={`${id}-size`} value={String(size)} onChange={(e) => setSize(Number((e.target as HTMLSelectElement).value))}>
          {sizes.map((v) => (
            <option key={v} value={String(v)}>
              {v}
            </option>
          ))}
        </select>
      </label>
      {live.error && <span class="error"> {live.error}</span>}
    </div>
  );
  return { live, pager };
}

// A table of one page of `path` (usePagedList): sorting and the filter box act on the page in
// hand; filters that reach the server are `filters`.
export function PagedTable<T>(props: {
  id: string;
  path: string;
  filters?: Record<string, string>;
  pollMs?: number;
  pageSize?: number;
  columns: Column<T>[];
  rowKey: (row: T) => string;
  onRow?: (row: T) => void;
  empty?: string;
}) {
  const { live, pager } = usePagedList<T>(props.id, props.path, props.filters || {}, props.pollMs, props.pageSize);
  const page = live.data;
  return (
    <div class="paged" id={`${props.id}-paged`}>
      {pager}
      <Table<T>
        id={props.id}
        rows={page?.items || []}
        columns={props.columns}
        rowKey={props.rowKey}
        onRow={props.onRow}
        empty={page ? props.empty : 'loading'}
        filterHint="filter this page"
        countNote=" on this page"
      />
    </div>
  );
}

// A text box whose value counts once the user is done typing (Enter or leaving the box), so a
// server-side filter does not cost a request per keystroke.
export function FilterBox(props: { id: string; placeholder: string; onCommit: (v: string) => void }) {
  return (
    <input
      class="filter"
      id={props.id}
      placeholder={props.placeholder}
      onChange={(e) => props.onCommit((e.target as HTMLInputElement).value.trim())}
    />
  );
}
