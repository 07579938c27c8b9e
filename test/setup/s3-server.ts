import { execFileSync } from 'node:child_process';
import type { TestProject } from 'vitest/node';

/** Connection settings of the S3 server the server-tier tests use. */
export interface S3TestServer {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** True when the server is the project's local Ceph RGW (the tests may kill and restart it). */
  local: boolean;
}

declare module 'vitest' {
  export interface ProvidedContext {
    s3: S3TestServer;
  }
}

/**
 * Uses S3_ENDPOINT (+ AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION) when set; otherwise
 * installs and starts the local Ceph RGW (scripts/s3-server.sh start, idempotent) and uses it.
 */
export default function setup(project: TestProject): void {
  const env = process.env;
  if (env.S3_ENDPOINT) {
    project.provide('s3', {
      endpoint: env.S3_ENDPOINT,
      accessKeyId: env.AWS_ACCESS_KEY_ID ?? '',
      secretAccessKey: env.AWS_SECRET_ACCESS_KEY ?? '',
      region: env.AWS_REGION ?? 'us-east-1',
      local: false,
    });
    return;
  }
  const output = execFileSync('bash', ['scripts/s3-server.sh', 'start'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const vars = Object.fromEntries(
    output
      .split('\n')
      .map((line) => /^([A-Z0-9_]+)=(.*)$/.exec(line.trim()))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [m[1], m[2]]),
  );
  project.provide('s3', {
    endpoint: vars.S3_ENDPOINT!,
    accessKeyId: vars.AWS_ACCESS_KEY_ID!,
    secretAccessKey: vars.AWS_SECRET_ACCESS_KEY!,
    region: vars.AWS_REGION ?? 'us-east-1',
    local: true,
  });
}
