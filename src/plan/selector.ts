// kubectl's equality-based label selectors: `-l tier=web,team=shop`.

export type Selector = Readonly<Record<string, string>>;

const KEY = /^[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?$/;
const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

/** Parses `key=value[,key=value]`; an error text for anything else (`a!=b`, `a`, `=b`). */
export function parseSelector(text: string): { selector: Selector } | { error: string } {
  const selector: Record<string, string> = {};
  for (const part of text.split(',')) {
    const match = /^\s*([^=\s]+)\s*==?\s*([^=\s]*)\s*$/.exec(part);
    if (!match || !KEY.test(match[1] as string) || !VALUE.test(match[2] as string)) {
      return { error: `"${part}" is not key=value (only equality selectors are supported)` };
    }
    selector[match[1] as string] = match[2] as string;
  }
  return { selector };
}

export function matchesSelector(labels: Readonly<Record<string, string>>, selector: Selector | undefined): boolean {
  return !selector || Object.entries(selector).every(([k, v]) => labels[k] === v);
}
