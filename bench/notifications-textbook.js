'use strict';
// The Node side of bench/notifications.sh.
//
//   node notifications-textbook.js enqueue REDIS_URL PREFIX QUEUE N
//       adds N send-email jobs (template report-ready, one recipient each,
//       distinct addresses) with bull's addBulk in batches of 1000.
//   node notifications-textbook.js worker REDIS_URL PREFIX QUEUE SMTP_URL CONNECTIONS CONCURRENCY TEMPLATES_DIR
//       the textbook Node setup: a bull 4.16.5 worker (queue.process with
//       CONCURRENCY) that renders the same Mustache templates with
//       mustache.js (text and subject unescaped, html escaped, the same
//       partials) and sends with nodemailer's pooled SMTP transport
//       (pool: true, maxConnections CONNECTIONS, maxMessages 100). Prints
//       "ready" once it processes.
const fs = require('node:fs');
const path = require('node:path');
const Queue = require('bull');

const [cmd, url, prefix, queueName, ...rest] = process.argv.slice(2);

const vars = (i) => ({
  recipientName: `Parent ${i}`, reportTitle: `Fee statement ${i}`, schoolName: 'Sunrise Public School, Pune',
  downloadUrl: `https://erp.example.test/dl/${i}?sig=abc`, expiresAt: '2026-12-09 10:00 IST', rows: 100 + i, format: 'pdf',
});

async function enqueue(n) {
  const q = new Queue(queueName, url, { prefix });
  for (let base = 0; base < n; base += 1000) {
    const batch = [];
    for (let i = base; i < Math.min(n, base + 1000); i++) {
      batch.push({ name: 'send-email', data: { schoolId: 1, to: `parent${i}@example.org`, template: 'report-ready', vars: vars(i) },
        opts: { removeOnComplete: false } });
    }
    await q.addBulk(batch);
  }
  await q.close();
}

async function worker(smtpUrl, conns, concurrency, dir) {
  const Mustache = require('mustache');
  const nodemailer = require('nodemailer');
  const read = (f) => fs.readFileSync(path.join(dir, f), 'utf8');
  const t = { subject: read('email/report-ready.en.subject.mustache'), text: read('email/report-ready.en.txt.mustache'),
    html: read('email/report-ready.en.html.mustache') };
  const partials = { 'html-open': read('partials/html-open.en.mustache'), 'html-close': read('partials/html-close.mustache'),
    signature: read('partials/signature.en.mustache') };
  const u = new URL(smtpUrl);
  const transport = nodemailer.createTransport({ pool: true, maxConnections: Number(conns), maxMessages: 100,
    host: u.hostname, port: Number(u.port), secure: false, ignoreTLS: true });
  const raw = { escape: (s) => String(s) };
  const q = new Queue(queueName, url, { prefix });
  q.process('send-email', Number(concurrency), async (job) => {
    const d = job.data;
    const info = await transport.sendMail({
      from: 'School Office <office@school.example>', to: d.to,
      subject: Mustache.render(t.subject, d.vars, partials, raw).trim(),
      text: Mustache.render(t.text, d.vars, partials, raw),
      html: Mustache.render(t.html, d.vars, partials),
    });
    return { status: 'sent', messageId: info.messageId };
  });
  process.stdout.write('ready\n');
  process.on('SIGTERM', async () => {
    await q.close();
    transport.close();
    process.exit(0);
  });
}

(async () => {
  if (cmd === 'enqueue') await enqueue(Number(rest[0]));
  else if (cmd === 'worker') await worker(...rest);
  else throw new Error('usage: enqueue|worker ...');
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
