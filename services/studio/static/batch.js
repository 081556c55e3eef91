/* Batches: one form, several runs (N random seeds, a seed sweep, or one setting through a list). */

const MAX_RUNS = 32;

function parseValue(text) {
  const t = text.trim();
  return /^-?\d+(\.\d+)?$/.test(t) ? Number(t) : t;
}

/** The runs of a batch: [{settings, label}], each the form's settings with one thing varied. */
export function variants(base, { runs, vary, setting, values }) {
  let out;
  if (vary === "setting") {
    if (!setting) throw new Error("name the setting the batch varies, e.g. frames");
    const list = values.split(",").map((v) => v.trim()).filter(Boolean).map(parseValue);
    if (list.length < 2) throw new Error(`give two or more values of ${setting}, separated by commas`);
    out = list.map((v) => ({ settings: { ...base, [setting]: v }, label: `${setting} ${v}` }));
  } else {
    if (!Number.isInteger(runs) || runs < 2) throw new Error("a batch needs 2 or more runs");
    const start = vary === "sweep" ? (base.seed ?? 0) : null;
    out = Array.from({ length: runs }, (_, i) => {
      const seed = start === null ? Math.floor(Math.random() * 2 ** 31) : start + i;
      return { settings: { ...base, seed }, label: `seed ${seed}` };
    });
  }
  if (out.length > MAX_RUNS) throw new Error(`a batch of ${out.length} runs: at most ${MAX_RUNS}`);
  return out;
}

/** What a form's batch box asks for. */
export function batchSpec(box) {
  return {
    runs: Number(box.querySelector(".runs").value), vary: box.querySelector(".vary").value,
    setting: box.querySelector(".setting").value.trim(), values: box.querySelector(".values").value,
  };
}
