// Quantities as the API writes them ("500m", "2", "64Mi", "40Gi") and as the dashboard shows them.

// "500m" -> 0.5, "2" -> 2 (CPUs).
export function cpu(text: string | undefined): number {
  if (!text) return 0;
  if (text.endsWith('m')) return Number(text.slice(0, -1)) / 1000;
  return Number(text) || 0;
}

const kUnits: Record<string, number> = { Ki: 1 / 1024, Mi: 1, Gi: 1024, Ti: 1024 * 1024 };

// "64Mi" -> 64, "40Gi" -> 40960 (MiB).
export function mib(text: string | undefined): number {
  if (!text) return 0;
  const m = /^([0-9.]+)\s*([KMGT]i)?$/.exec(text);
  if (!m) return 0;
  return Number(m[1]) * (m[2] ? kUnits[m[2]] : 1 / (1024 * 1024));
}

export function fmtMiB(v: number): string {
  if (v >= 1024 * 1024) return `${trim(v / (1024 * 1024))}Ti`;
  if (v >= 1024) return `${trim(v / 1024)}Gi`;
  return `${trim(v)}Mi`;
}

export function trim(v: number): string {
  return String(Math.round(v * 100) / 100);
}

export function pct(part: number, whole: number): number {
  return whole > 0 ? Math.min(100, (100 * part) / whole) : 0;
}

// "3m", "2h", "5d" since an RFC 3339 time; "-" when unknown.
export function age(time: string | null | undefined, now = Date.now()): string {
  if (!time) return '-';
  const t = Date.parse(time);
  if (!Number.isFinite(t) || t <= 0) return '-';
  const s = Math.max(0, Math.floor((now - t) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}
