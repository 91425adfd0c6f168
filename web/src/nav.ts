// Hash routes: #/cluster, #/hosts, #/hosts/NAME, #/workloads, #/workloads/NAME, #/pending,
// #/storage, #/events, #/simulator.
export function go(hash: string): void {
  window.location.hash = hash;
}

export function route(): string[] {
  const h = window.location.hash.replace(/^#\/?/, '');
  return h ? h.split('/').map((p) => decodeURIComponent(p)) : ['cluster'];
}
