// HTTP probe: one GET, success on 2xx or 3xx (redirects are not followed). The body is not read:
// the response and its socket are destroyed as soon as the status line is in.
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { attempt, errorMessage, type ProbeResult } from './result.js';

export interface HttpTarget {
  scheme: 'http' | 'https';
  host: string;
  port: number;
  path: string;
  headers: Record<string, string>;
}

const USER_AGENT = 'pm-probe/1';

export function runHttpProbe(target: HttpTarget, timeoutSeconds: number, signal?: AbortSignal): Promise<ProbeResult> {
  return attempt(timeoutSeconds, signal, (settle) => {
    let response: IncomingMessage | undefined;
    const options = {
      host: target.host,
      port: target.port,
      path: target.path,
      method: 'GET',
      headers: { 'user-agent': USER_AGENT, accept: '*/*', ...target.headers },
      // A fresh connection each time, closed afterwards: no pooled socket outlives the probe.
      agent: false as const,
    };
    const req: ClientRequest =
      target.scheme === 'https'
        ? // Like the kubelet: a health check verifies reachability, not the certificate.
          httpsRequest({ ...options, rejectUnauthorized: false })
        : httpRequest(options);
    req.on('response', (res) => {
      response = res;
      res.on('error', () => undefined);
      const status = res.statusCode ?? 0;
      const ok = status >= 200 && status < 400;
      settle(ok, ok || !res.statusMessage ? `HTTP ${status}` : `HTTP ${status} ${res.statusMessage}`);
    });
    req.on('error', (err) => settle(false, errorMessage(err)));
    req.end();
    return () => {
      response?.destroy();
      req.destroy();
    };
  });
}
