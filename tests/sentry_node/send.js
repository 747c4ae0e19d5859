// The real @sentry/node SDK: one exception with a cause, one message. argv: DSN.
// Prints the event ids, one per line.
const Sentry = require("@sentry/node");

function readCache(key) {
  throw new RangeError(`cache miss for ${key}`);
}

function chargeCard(order) {
  try {
    readCache(`card:${order}`);
  } catch (cause) {
    throw new TypeError(`card declined for ${order}`, { cause });
  }
}

async function main(dsn) {
  Sentry.init({ dsn, release: "web@3.1.4", environment: "staging", serverName: "node-1",
                tracesSampleRate: 0 });
  Sentry.setTag("region", "us-east");
  Sentry.setUser({ id: "7", email: "grace@example.com" });
  try {
    chargeCard("o-1");
  } catch (error) {
    console.log(Sentry.captureException(error));
  }
  console.log(Sentry.captureMessage("queue is slow", "warning"));
  const flushed = await Sentry.flush(10000);
  if (!flushed) {
    process.exitCode = 3;
  }
}

main(process.argv[2]);
