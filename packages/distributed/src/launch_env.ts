/**
 * Reads where a worker stands in a job from the environment that existing launchers give it.
 * Precedence: RANK/WORLD_SIZE/MASTER_* (torchrun, Kubeflow PyTorchJob, thor-ts-launch), then
 * PET_* (Kubeflow Trainer), then OMPI_COMM_WORLD_* (mpirun, MPIJob), then SLURM_* (srun).
 */
export interface LaunchEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  /** The coordinator's host. */
  masterAddr: string;
  masterPort: number;
  /** Which launcher's variables were used. */
  source: 'torchrun' | 'kubeflow-trainer' | 'mpi' | 'slurm';
}

const DEFAULT_PORT = 29500;

function int(env: NodeJS.ProcessEnv, name: string, fallback?: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') {
    if (fallback !== undefined) return fallback;
    throw new Error(`launch environment: expected ${name} to be set, it is not`);
  }
  const v = Number(raw);
  if (!Number.isInteger(v) || v < 0) {
    throw new Error(`launch environment: expected ${name} to be a whole number, got '${raw}'`);
  }
  return v;
}

/** The first host of a Slurm node list: `node[03-05,07]` → `node03`, `a,b` → `a`. */
export function firstSlurmHost(list: string): string {
  const m = /^([^,[]+)(?:\[([^\]]+)\])?/.exec(list.trim());
  if (!m) throw new Error(`launch environment: cannot read SLURM_JOB_NODELIST '${list}'`);
  const [, prefix, range] = m;
  if (range === undefined) return prefix as string;
  const first = (range.split(',')[0] as string).split('-')[0] as string;
  return `${prefix}${first}`;
}

function check(e: LaunchEnv): LaunchEnv {
  if (e.worldSize < 1 || e.rank >= e.worldSize) {
    throw new Error(
      `launch environment (${e.source}): expected 0 ≤ rank < world size, got rank ${e.rank} of ${e.worldSize}`,
    );
  }
  return e;
}

export function readLaunchEnv(env: NodeJS.ProcessEnv = process.env): LaunchEnv {
  if (env.RANK !== undefined && env.WORLD_SIZE !== undefined) {
    return check({
      rank: int(env, 'RANK'),
      worldSize: int(env, 'WORLD_SIZE'),
      localRank: int(env, 'LOCAL_RANK', int(env, 'RANK')),
      masterAddr: env.MASTER_ADDR ?? '127.0.0.1',
      masterPort: int(env, 'MASTER_PORT', DEFAULT_PORT),
      source: 'torchrun',
    });
  }
  if (env.PET_NNODES !== undefined && env.PET_NODE_RANK !== undefined) {
    const perNode = int(env, 'PET_NPROC_PER_NODE', 1);
    const localRank = int(env, 'LOCAL_RANK', 0);
    return check({
      rank: int(env, 'PET_NODE_RANK') * perNode + localRank,
      worldSize: int(env, 'PET_NNODES') * perNode,
      localRank,
      masterAddr: env.PET_MASTER_ADDR ?? '127.0.0.1',
      masterPort: int(env, 'PET_MASTER_PORT', DEFAULT_PORT),
      source: 'kubeflow-trainer',
    });
  }
  if (env.OMPI_COMM_WORLD_RANK !== undefined) {
    return check({
      rank: int(env, 'OMPI_COMM_WORLD_RANK'),
      worldSize: int(env, 'OMPI_COMM_WORLD_SIZE'),
      localRank: int(env, 'OMPI_COMM_WORLD_LOCAL_RANK', 0),
      masterAddr: env.MASTER_ADDR ?? '127.0.0.1',
      masterPort: int(env, 'MASTER_PORT', DEFAULT_PORT),
      source: 'mpi',
    });
  }
  if (env.SLURM_PROCID !== undefined) {
    return check({
      rank: int(env, 'SLURM_PROCID'),
      worldSize: int(env, 'SLURM_NTASKS'),
      localRank: int(env, 'SLURM_LOCALID', 0),
      masterAddr: env.MASTER_ADDR ?? firstSlurmHost(env.SLURM_JOB_NODELIST ?? '127.0.0.1'),
      masterPort: int(env, 'MASTER_PORT', DEFAULT_PORT),
      source: 'slurm',
    });
  }
  throw new Error(
    'launch environment: expected RANK and WORLD_SIZE, PET_NNODES and PET_NODE_RANK, ' +
      'OMPI_COMM_WORLD_RANK or SLURM_PROCID; found none',
  );
}
