// Disks and networks: lists, a page at a time, and each item's details on a click.
import { useState } from 'preact/hooks';
import { PagedTable } from './table';

type Item = Record<string, unknown> & { name: string };

// Their lists take no blocking query: the page in view is read again every five seconds.
const kStoragePollMs = 5000;

function Listing(props: { title: string; path: string; id: string; columns: string[] }) {
  const [open, setOpen] = useState<Item | null>(null);
  return (
    <div class="card">
      <h3>{props.title}</h3>
      <PagedTable<Item>
        id={props.id}
        path={props.path}
        pollMs={kStoragePollMs}
        rowKey={(x) => x.name}
        onRow={(x) => setOpen(open && open.name === x.name ? null : x)}
        empty={`no ${props.title.toLowerCase()}`}
        columns={props.columns.map((c) => ({
          title: c.replace(/^(spec|status)\./, ''),
          value: (x: Item) => {
            // "status.size": a field of a nested object.
            let v: unknown = x;
            for (const part of c.split('.')) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[part] : undefined;
            return v === undefined || v === null ? '-' : typeof v === 'object' ? JSON.stringify(v) : String(v);
          },
        }))}
      />
      {open && <pre class="spec">{JSON.stringify(open, null, 2)}</pre>}
    </div>
  );
}

export function StorageView() {
  return (
    <section id="view-storage">
      <h2>Disks and networks</h2>
      <Listing title="Disks" path="/v1/disks" id="disks-table" columns={['name', 'status.size', 'spec.format', 'status.state', 'status.attached_to']} />
      <Listing title="Networks" path="/v1/networks" id="networks-table" columns={['name', 'spec.subnet', 'spec.gateway', 'status.state', 'status.bridge']} />
    </section>
  );
}
