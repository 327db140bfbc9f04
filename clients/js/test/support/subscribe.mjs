// A supabase-js subscriber for tests run from Python: prints one JSON line per event.
//   node subscribe.mjs <supabaseUrl> <anonKey> <accessToken> <topic> <private:true|false>
// Lines: {"status": "SUBSCRIBED"} then {"broadcast": {...}} per message; exits when stdin closes.
import { createClient } from '@supabase/supabase-js';

const [url, anonKey, token, topic, isPrivate] = process.argv.slice(2);
const supabase = createClient(url, anonKey, { accessToken: async () => token });
await supabase.realtime.setAuth();
const out = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);
supabase
  .channel(topic, { config: { private: isPrivate === 'true' } })
  .on('broadcast', { event: '*' }, (message) => out({ broadcast: message }))
  .subscribe((status, err) => out({ status, error: err?.message ?? null }));
process.stdin.resume();
process.stdin.on('end', async () => {
  await supabase.removeAllChannels();
  process.exit(0);
});
