// Everyone: each village's collective income for the year against the 1,000,000-yuan line
// ("村村百万") and the 200,000-yuan weak-village line, as an inline SVG bar chart and a table.

import { api } from "../api.js";
import { getLang, t } from "../i18n.js";
import { failure, field, h, latest, money, parseFen, replace, section, table } from "../ui.js";

const SVG = "http://www.w3.org/2000/svg";
const TARGET_FEN = 100_000_000;
const WEAK_FEN = 20_000_000;

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) if (value !== undefined && value !== null) el.setAttribute(key, String(value));
  for (const child of children) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

// Round a scale maximum up to 1, 2 or 5 × a power of ten (in yuan), so the ticks read well.
function niceMax(yuan) {
  const power = 10 ** Math.floor(Math.log10(Math.max(yuan, 1)));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= yuan) return step * power;
  return 10 * power;
}

function yuanLabel(yuan) {
  if (yuan === 0) return "0";
  if (getLang() === "zh") return yuan >= 10_000 ? `${yuan / 10_000}万` : String(yuan);
  return yuan >= 1_000_000 ? `${yuan / 1_000_000}M` : `${yuan / 1_000}k`;
}

export function incomeChart(villages) {
  const rowHeight = 30;
  const left = 170;
  const right = 120;
  const top = 34;
  const width = 860;
  const plot = width - left - right;
  const height = top + villages.length * rowHeight + 30;
  const incomes = villages.map((v) => parseFen(v.income) ?? 0);
  const maxYuan = niceMax(Math.max(TARGET_FEN * 1.2, ...incomes) / 100);
  const x = (fen) => left + (Math.max(fen, 0) / 100 / maxYuan) * plot;
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img", class: "chart",
    "aria-label": t("income.chart_label"), "data-testid": "income-chart" });
  svg.append(s("title", {}, t("income.chart_label")));
  // grid and axis ticks
  for (let i = 0; i <= 5; i++) {
    const yuan = (maxYuan / 5) * i;
    const gx = left + (plot / 5) * i;
    svg.append(s("line", { x1: gx, x2: gx, y1: top - 6, y2: height - 24, class: "grid" }),
      s("text", { x: gx, y: height - 8, class: "tick", "text-anchor": "middle" }, yuanLabel(yuan)));
  }
  villages.forEach((v, i) => {
    const fen = incomes[i];
    const y = top + i * rowHeight;
    const kind = fen < WEAK_FEN ? "weak" : fen < TARGET_FEN ? "below" : "met";
    svg.append(
      s("text", { x: left - 10, y: y + rowHeight / 2 + 5, class: "label", "text-anchor": "end" }, v.name || v.collective_id),
      s("rect", { x: left, y: y + 5, width: Math.max(x(fen) - left, 1), height: rowHeight - 10, rx: 3, class: `bar ${kind}`,
        "data-village": v.collective_id },
      s("title", {}, `${v.name || v.collective_id}: ${money(v.income)}`)),
      s("text", { x: x(fen) + 6, y: y + rowHeight / 2 + 5, class: "value" }, money(v.income)));
  });
  // the two lines, drawn over the bars
  for (const [fen, cls, label] of [[TARGET_FEN, "target", t("income.target_line")], [WEAK_FEN, "weak-line", t("income.weak_line")]]) {
    svg.append(s("line", { x1: x(fen), x2: x(fen), y1: top - 10, y2: height - 24, class: cls }),
      s("text", { x: x(fen), y: top - 14, class: `${cls}-label`, "text-anchor": "middle" }, label));
  }
  return svg;
}

export async function incomePage(root) {
  const year = h("input", { type: "number", min: 2000, max: 2100, step: 1, value: new Date().getFullYear(), name: "year",
    "data-testid": "year", class: "year" });
  const town = h("select", { name: "town", "data-testid": "town" }, h("option", { value: "" }, t("income.all_towns")));
  const slot = h("div", { "data-testid": "village-income" });
  root.append(h("h1", {}, t("income.title")), h("p", { class: "muted" }, t("income.help")),
    h("div", { class: "toolbar" }, field(t("year"), year), field(t("income.town"), town)), slot);
  year.addEventListener("change", () => load());
  town.addEventListener("change", () => load());
  const turn = latest();

  async function load() {
    const current = turn();
    try {
      const report = await api("ledger", "/v1/reports/village-income", { query: { year: year.value, town: town.value } });
      if (!current()) return;
      if (!town.value) {
        // The towns to filter by are those of the unfiltered report.
        town.replaceChildren(h("option", { value: "" }, t("income.all_towns")),
          ...(report.by_town || []).map((g) => h("option", { value: g.group }, g.group)));
      }
      const villages = report.villages || report.items || [];
      const status = (v) => {
        const fen = parseFen(v.income) ?? 0;
        if (v.weak ?? fen < WEAK_FEN) return h("span", { class: "tag weak" }, t("income.weak"));
        if (v.below_million ?? fen < TARGET_FEN) return h("span", { class: "tag below" }, t("income.below"));
        return h("span", { class: "tag met" }, t("income.met"));
      };
      const below = report.below_million_count ?? villages.filter((v) => (parseFen(v.income) ?? 0) < TARGET_FEN).length;
      const weak = report.weak_count ?? villages.filter((v) => (parseFen(v.income) ?? 0) < WEAK_FEN).length;
      replace(slot,
        h("p", { class: "summary", "data-testid": "income-summary" },
          t("income.summary", { n: villages.length, below, weak, total: money(report.total_income) })),
        section(`${year.value} ${t("income.chart_label")}`, villages.length ? incomeChart(villages) : h("p", { class: "muted" }, t("empty")),
          h("p", { class: "legend" }, h("span", { class: "swatch met" }), t("income.met"), h("span", { class: "swatch below" }), t("income.below"),
            h("span", { class: "swatch weak" }), t("income.weak"))),
        section(t("income.villages"), table([
          { key: "name", label: t("income.village"), render: (v) => v.name || v.collective_id },
          { key: "town", label: t("income.town") },
          { key: "alliances", label: t("income.alliances"), render: (v) => (v.alliances || []).join("、") },
          { key: "income", label: t("income.income"), money: true },
          { key: "status", label: t("status"), render: status },
        ], villages, { testid: "income-table", footer: { name: t("total"), income: report.total_income } })),
        (report.by_town || []).length ? section(t("income.by_town"), table([
          { key: "group", label: t("income.town"), render: (r) => r.group ?? r.town },
          { key: "village_count", label: t("income.count"), class: "num" },
          { key: "income", label: t("income.income"), money: true },
          { key: "below_million_count", label: t("income.below"), class: "num" },
          { key: "weak_count", label: t("income.weak"), class: "num" },
        ], report.by_town)) : null);
    } catch (exc) {
      if (current()) replace(slot, failure(exc));
    }
  }
  await load();
}
