// Turning the transfers into medians per case, direction and tool, and into Markdown.
import { VERIFIED_LEGEND } from './tools.mjs';
import { fmt, MiB, median } from './util.mjs';

/**
 * One row per case × direction × tool of the plan. A row has `status` (text for the cell) when
 * the tool did not run there or failed; otherwise medians and ranges of its runs.
 */
export function summarize(records, plan) {
  const rows = [];
  for (const c of plan.cases) {
    for (const direction of c.directions) {
      for (const tool of c.tools) {
        const rs = records.filter((r) => r.case === c.id && r.direction === direction && r.tool === tool);
        const ok = rs.filter((r) => !r.failed);
        const base = { case: c.id, direction, tool, runs: ok.length, verified: plan.verified[`${c.id}/${direction}/${tool}`] };
        const status =
          plan.status[`${c.id}/${direction}/${tool}`] ?? (rs.length > ok.length ? failedText(rs.find((r) => r.failed)) : undefined);
        if (status || ok.length === 0) {
          rows.push({ ...base, status: status ?? 'no runs' });
          continue;
        }
        const walls = ok.map((r) => r.wallS);
        const server = ok.map((r) => (r.serverCpuS.radosgw ?? 0) + (r.serverCpuS.osd ?? 0));
        rows.push({
          ...base,
          bytes: c.bytes,
          wallS: { median: median(walls), min: Math.min(...walls), max: Math.max(...walls) },
          mibps: c.bytes / MiB / median(walls),
          cpuS: median(ok.map((r) => r.cpuS)),
          userS: median(ok.map((r) => r.userS)),
          sysS: median(ok.map((r) => r.sysS)),
          peakRssMiB: median(ok.map((r) => r.peakRssMiB)),
          maxPeakRssMiB: Math.max(...ok.map((r) => r.peakRssMiB)),
          serverCpuS: median(server),
          machineBusy: median(ok.map((r) => r.machineBusy)),
          otherCpuS: median(ok.map((r) => r.otherCpuS)),
        });
      }
      // s3xfer's wall against the fastest other tool's, in the same case and direction.
      const here = rows.filter((r) => r.case === c.id && r.direction === direction && !r.status);
      const mine = here.find((r) => r.tool === 's3xfer');
      const peers = here.filter((r) => r.tool !== 's3xfer' && !plan.baselines.includes(r.tool));
      if (mine && peers.length) {
        const best = peers.reduce((a, b) => (b.wallS.median < a.wallS.median ? b : a));
        mine.vsBestPeer = { tool: best.tool, wallRatio: mine.wallS.median / best.wallS.median, cpuRatio: mine.cpuS / best.cpuS };
      }
    }
  }
  return rows;
}

function failedText(r) {
  return `failed (exit ${r.code})`;
}

/** Wall of tree-big ÷ wall of big, per tool and direction (same bytes in 100 files vs one file). */
export function treeVsFile(rows, treeCase = 'tree-big', fileCase = 'big') {
  const out = [];
  const find = (c, d, t) => rows.find((r) => r.case === c && r.direction === d && r.tool === t && !r.status);
  for (const tool of [...new Set(rows.filter((r) => r.case === treeCase).map((r) => r.tool))]) {
    const ratios = {};
    for (const d of ['upload', 'download']) {
      const tree = find(treeCase, d, tool);
      const file = find(fileCase, d, tool);
      ratios[d] = tree && file ? tree.wallS.median / file.wallS.median : undefined;
    }
    if (ratios.upload !== undefined || ratios.download !== undefined) out.push({ tool, ...ratios });
  }
  return out;
}

/** The Markdown block to paste into BENCHMARKS.md. */
export function markdown(report) {
  const { rows, plan, meta } = report;
  const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;
  const exceptions = plan.cases.filter((c) => c.runs !== meta.runs).map((c) => `${c.id}: ${c.runs}`);
  const L = [];
  L.push(
    `Recorded ${meta.date} (\`bench/results/${meta.file}\`): ${plural(meta.runs, 'run')}` +
      `${exceptions.length ? ` (${exceptions.join(', ')})` : ''}, the tools interleaved in each run and their order rotated from run to run.`,
  );
  const top = meta.loadBefore.top.map((p) => `${p.comm} ${fmt(p.cpuShare * 100, 0)}%`).join(', ');
  L.push(
    `Machine: ${meta.machine.cores} cores (${meta.machine.cpuModel}), shared with the Ceph server. ` +
      `Just before the bench it was ${fmt((meta.loadBefore.busy ?? Number.NaN) * 100, 0)}% busy${top ? ` (${top})` : ''}; ` +
      `load average ${meta.loadBefore.loadavg.join(' / ')} at the start, ${meta.loadAfter.join(' / ')} at the end.`,
  );
  if (meta.seededBy) {
    L.push(
      `Downloads: each case's object(s) were uploaded once before the runs with ${meta.seededBy} at its defaults, ` +
        'so every tool downloads the same objects' +
        `${meta.seededBy === 'aws' ? ' as boto writes them: from 8 MiB on in 8 MiB parts, so that their ETags are not MD5s' : ''}.`,
    );
  }
  L.push('');
  L.push('Tools, each a fresh process for every transfer:');
  for (const t of Object.values(meta.tools)) L.push(`- **${t.name}**: ${t.version}; ${t.settings}.`);
  L.push('');
  L.push(
    '| case | direction | tool | wall s | wall s (min–max) | MiB/s | CPU s (user + sys) | peak RSS MiB | Ceph CPU s | machine busy | verified bytes? | s3xfer ÷ best peer (wall) |',
  );
  L.push('| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |');
  for (const r of rows) {
    if (r.status) {
      L.push(`| ${r.case} | ${r.direction} | ${r.tool} | ${r.status} | | | | | | | | |`);
      continue;
    }
    const ratio = r.vsBestPeer ? `**${fmt(r.vsBestPeer.wallRatio, 2)}×** (${r.vsBestPeer.tool})` : '';
    L.push(
      `| ${r.case} | ${r.direction} | ${r.tool} | **${fmt(r.wallS.median, r.wallS.median < 10 ? 2 : 1)}** | ` +
        `${fmt(r.wallS.min, 2)}–${fmt(r.wallS.max, 2)} | ${r.bytes >= MiB ? fmt(r.mibps) : '–'} | ` +
        `${fmt(r.cpuS, 2)} (${fmt(r.userS, 2)} + ${fmt(r.sysS, 2)}) | ${fmt(r.peakRssMiB, 0)} | ${fmt(r.serverCpuS, 1)} | ` +
        `${fmt(r.machineBusy * 100, 0)}% | ${r.verified ?? ''} | ${ratio} |`,
    );
  }
  L.push('');
  L.push('Cases:');
  for (const c of plan.cases) L.push(`- **${c.id}** (${c.about}): ${c.shape}, ${c.directions.join(' and ')}; ${plural(c.runs, 'run')}.`);
  L.push('');
  L.push(
    'Wall s: the whole process, start-up included; median and range of the runs. MiB/s: bytes ÷ median wall. ' +
      "CPU s and peak RSS: the tool's process tree under `/usr/bin/time` (RSS of its largest process), medians. " +
      'Ceph CPU s: radosgw + ceph-osd during the transfer. Machine busy: the non-idle share of both cores during the transfer. ' +
      "s3xfer ÷ best peer: s3xfer's median wall over the fastest other tool's (below 1: s3xfer is faster)" +
      `${plan.baselines.length ? `; ${plan.baselines.join(', ')}, a single-request baseline, is not counted as a peer` : ''}.`,
  );
  const other = rows.filter((r) => !r.status && Number.isFinite(r.otherCpuS)).map((r) => r.otherCpuS);
  if (other.length) {
    L.push(
      `CPU used by neither the tool nor Ceph during a transfer (kernel, anything else running): median ${fmt(median(other), 2)} s, ` +
        `at most ${fmt(Math.max(...other), 2)} s (medians per cell).`,
    );
  }
  for (const note of plan.notes) L.push(note);
  L.push('');
  L.push("Verified bytes? (on this server, for the objects of that case's size):");
  for (const line of VERIFIED_LEGEND) L.push(`- ${line}`);
  const tvf = treeVsFile(rows);
  if (tvf.length) {
    L.push('');
    L.push('The same bytes in many files against one file (median wall of tree-big ÷ median wall of big):');
    L.push('');
    L.push('| tool | upload | download |');
    L.push('| --- | ---: | ---: |');
    for (const t of tvf) L.push(`| ${t.tool} | ${fmt(t.upload, 2)}× | ${fmt(t.download, 2)}× |`);
  }
  return L.join('\n');
}
