'use strict';
// The Node peer of bench/http.sh: an Express server doing what our
// POST /v1/queues/{queue}/jobs does - verify an HS256 bearer token (exp
// required), parse JSON, check the job name, and bull's queue.add().
// argv: port redisUrl queue secret
const crypto = require('node:crypto');
const express = require('express');
const Queue = require('bull');

const [port, redisUrl, queueName, secret] = process.argv.slice(2);
const queue = new Queue(queueName, redisUrl);
const app = express();
app.use(express.json({ limit: '1mb' }));

function verify(h) {
  if (!h || !h.startsWith('Bearer ')) return null;
  const [hd, pl, sig] = h.slice(7).split('.');
  if (!sig) return null;
  const header = JSON.parse(Buffer.from(hd, 'base64url'));
  if (header.alg !== 'HS256') return null;
  const want = crypto.createHmac('sha256', secret).update(`${hd}.${pl}`).digest();
  const got = Buffer.from(sig, 'base64url');
  if (got.length !== want.length || !crypto.timingSafeEqual(got, want)) return null;
  const claims = JSON.parse(Buffer.from(pl, 'base64url'));
  if (typeof claims.exp !== 'number' || claims.exp < Date.now() / 1000) return null;
  return claims;
}

app.post('/v1/queues/:queue/jobs', async (req, res) => {
  const claims = verify(req.get('authorization'));
  if (!claims) return res.status(401).json({ error: { code: 'unauthorized', message: 'bad token' } });
  const { name, data, opts } = req.body || {};
  if (name !== 'noop') return res.status(422).json({ error: { code: 'invalid_job', message: 'bad name' } });
  try {
    const job = await queue.add(name, data || {}, opts || {});
    res.status(201).json({ id: String(job.id), queue: queueName, name, state: 'waiting' });
  } catch (e) {
    res.status(503).json({ error: { code: 'redis_unavailable', message: String(e.message) } });
  }
});

queue.isReady().then(() => app.listen(Number(port), '127.0.0.1', () => console.log('ready')));
