import { describe, expect, it } from 'vitest';

import { firstSlurmHost, readLaunchEnv } from '../dist/index.js';

describe('readLaunchEnv', () => {
  it('reads torchrun / PyTorchJob variables first', () => {
    const env = {
      RANK: '3',
      WORLD_SIZE: '8',
      LOCAL_RANK: '1',
      MASTER_ADDR: 'job-master-0',
      MASTER_PORT: '23456',
      SLURM_PROCID: '0',
    };
    expect(readLaunchEnv(env)).toEqual({
      rank: 3,
      worldSize: 8,
      localRank: 1,
      masterAddr: 'job-master-0',
      masterPort: 23456,
      source: 'torchrun',
    });
  });

  it('derives the rank from Kubeflow Trainer’s PET_* (node 2 of 4, 2 per node, local 1 → rank 5 of 8)', () => {
    const env = {
      PET_NNODES: '4',
      PET_NODE_RANK: '2',
      PET_NPROC_PER_NODE: '2',
      LOCAL_RANK: '1',
      PET_MASTER_ADDR: 'm',
      PET_MASTER_PORT: '29400',
    };
    expect(readLaunchEnv(env)).toMatchObject({
      rank: 5,
      worldSize: 8,
      masterAddr: 'm',
      masterPort: 29400,
      source: 'kubeflow-trainer',
    });
  });

  it('reads mpirun’s OMPI_COMM_WORLD_* and srun’s SLURM_*', () => {
    expect(
      readLaunchEnv({ OMPI_COMM_WORLD_RANK: '1', OMPI_COMM_WORLD_SIZE: '2', MASTER_ADDR: 'h' }),
    ).toMatchObject({ rank: 1, worldSize: 2, masterAddr: 'h', masterPort: 29500, source: 'mpi' });
    const slurm = {
      SLURM_PROCID: '6',
      SLURM_NTASKS: '16',
      SLURM_LOCALID: '2',
      SLURM_JOB_NODELIST: 'gpu[07-10,12]',
    };
    expect(readLaunchEnv(slurm)).toEqual({
      rank: 6,
      worldSize: 16,
      localRank: 2,
      masterAddr: 'gpu07',
      masterPort: 29500,
      source: 'slurm',
    });
    expect(firstSlurmHost('a1,b2')).toBe('a1');
  });

  it('says what it expected when variables are missing or wrong', () => {
    expect(() => readLaunchEnv({})).toThrow(/expected RANK and WORLD_SIZE, .*found none/);
    expect(() => readLaunchEnv({ RANK: 'x', WORLD_SIZE: '2' })).toThrow(
      /expected RANK to be a whole number, got 'x'/,
    );
    expect(() => readLaunchEnv({ RANK: '4', WORLD_SIZE: '4' })).toThrow(
      /\(torchrun\): expected 0 ≤ rank < world size, got rank 4 of 4/,
    );
  });
});
