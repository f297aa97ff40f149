/**
 * A generic snapshot of a view's getters (props.ts, and the fuzz targets,
 * which must not load ava): a view that reads nothing outside its range
 * gives the same snapshot whatever bytes surround it.
 */

/** Getter names of a prototype chain, found once per class. */
const getters = new WeakMap<object, string[]>();

function getterNames(proto: object): string[] {
  let names = getters.get(proto);
  if (!names) {
    names = [];
    for (let p = proto; p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
      for (const [k, d] of Object.entries(Object.getOwnPropertyDescriptors(p))) if (d.get && !names.includes(k)) names.push(k);
    }
    getters.set(proto, names);
  }
  return names;
}

/** All getter values and own scalar fields of a view (u8/dv excluded). */
export function snapshot(v: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, val] of Object.entries(v)) if (k !== 'u8' && k !== 'dv' && typeof val !== 'object') out[k] = val;
  for (const k of getterNames(Object.getPrototypeOf(v))) if (!(k in out)) out[k] = (v as Record<string, unknown>)[k];
  return out;
}
