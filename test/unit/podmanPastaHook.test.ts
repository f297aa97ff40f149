/**
 * The argv the Podman test hook gives pasta (test/helpers/podmanPastaHook.ts)
 * is Podman 5.3's: c/common's createPastaArgs() golden vectors as
 * ../shared/CLIENTS.md §1.2 lists them.
 */
import test from 'ava';
import { parsePublish, podmanPastaArgs } from '../helpers/podmanPastaHook';

const NS = '/run/user/1000/netns/netns-1b53da85-9d88-ae87-e4ce-cafcac081d1c';
const argv = (cli: string[], publish: string[] = []) => podmanPastaArgs(cli, publish.map(parsePublish), NS).join(' ');
const TAIL = `--netns ${NS} --map-guest-addr 169.254.1.2`;

test('Podman 5.3 argv: no options, ports, -T, --map-gw, debug options', (t) => {
  t.is(argv([]), `--config-net --dns-forward 169.254.1.1 -t none -u none -T none -U none --no-map-gw --quiet ${TAIL}`);
  t.is(argv([], ['8080:80']), `--config-net -t 8080-8080:80-80 --dns-forward 169.254.1.1 -u none -T none -U none --no-map-gw --quiet ${TAIL}`);
  t.is(argv([], ['80:60', '100:100/udp']),
    `--config-net -t 80-80:60-60 -u 100-100:100-100 --dns-forward 169.254.1.1 -T none -U none --no-map-gw --quiet ${TAIL}`);
  t.is(argv(['-T', '80']), `--config-net -T 80 --dns-forward 169.254.1.1 -t none -u none -U none --no-map-gw --quiet ${TAIL}`);
  t.is(argv(['--map-gw']), `--config-net --dns-forward 169.254.1.1 -t none -u none -T none -U none --quiet ${TAIL}`);
  t.is(argv(['--log-file=/tmp/log', '--trace', '--debug']),
    `--config-net --log-file=/tmp/log --trace --debug --dns-forward 169.254.1.1 -t none -u none -T none -U none --no-map-gw ${TAIL}`);
});

test('user --dns-forward and --map-guest-addr replace Podman\'s defaults', (t) => {
  t.is(argv(['--dns-forward', '198.51.100.1', '--map-guest-addr', '198.51.100.2']),
    `--config-net --dns-forward 198.51.100.1 --map-guest-addr 198.51.100.2 -t none -u none -T none -U none --no-map-gw --quiet --netns ${NS}`);
});

test('-p forms: host IP verbatim (IPv6 without brackets), ranges, tcp,udp; sctp refused', (t) => {
  t.is(argv([], ['127.0.0.1:5000:5000/udp']).split(' ').slice(1, 3).join(' '), '-u 127.0.0.1/5000-5000:5000-5000');
  t.is(argv([], ['[::1]:8080:80']).split(' ').slice(1, 3).join(' '), '-t ::1/8080-8080:80-80');
  t.is(argv([], ['8000-8002:9000-9002/tcp,udp']).split(' ').slice(1, 5).join(' '), '-t 8000-8002:9000-9002 -u 8000-8002:9000-9002');
  t.throws(() => argv([], ['80:80/sctp']), { message: "can't forward protocol: sctp" });
  t.throws(() => parsePublish('80'), { message: /bad port mapping/ });
});
