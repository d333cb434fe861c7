/* A stand-in for the NVIDIA driver's libnvidia-ml.so.1: the NVML calls duplex makes, answered from a
 * description file instead of a GPU. nvidia-ml-py (pynvml) loads it with CDLL("libnvidia-ml.so.1"),
 * so every test that uses it crosses the real ctypes layer: buffers and bytes, struct layouts, return
 * codes turned into pynvml's own exception classes. A call duplex makes that is missing here shows up
 * as NVMLError_FunctionNotFound, exactly as with an old driver.
 *
 * The description (path in FAKE_NVML_DESCRIPTION, read again at every nvmlInit) is written by
 * tests/support/fakenvml.py from a JSON host description; one record per line, tab-separated:
 *   init_error <code>
 *   driver <version>            cuda <12040>
 *   gpu  name=..  major=9  minor=0  total=..  free=..  uuid=GPU-..  [mig=0|1]
 *   mig  name=..  total=..  free=..  uuid=MIG-..   (an instance of the gpu line above it)
 *   proc pid=..  used=..        (a compute process on the gpu line above it: per-process accounting)
 *   fail call=<nvml function>  device=<gpu line number, 0-based>  code=<NVML return code>
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GPUS 16
#define MAX_MIG 7
#define MAX_FAILS 32
#define MAX_PROCS 32
#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_NOT_FOUND 6
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_UNKNOWN 999

typedef struct device {
    char name[96], uuid[96];
    int major, minor, mig_capable, mig_mode, is_mig, parent, n_mig, mig[MAX_MIG], n_procs;
    unsigned long long total, free;
    unsigned int pids[MAX_PROCS];
    unsigned long long used[MAX_PROCS];
} device;

/* nvmlProcessInfo_t (v2/v3 share this layout): what nvmlDeviceGetComputeRunningProcesses fills */
typedef struct { unsigned int pid; unsigned long long usedGpuMemory; unsigned int gpuInstanceId, computeInstanceId; } nvmlProcessInfo_t;

typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct { unsigned int version; unsigned long long total, reserved, free, used; } nvmlMemory_v2_t;

static device devs[MAX_GPUS * (MAX_MIG + 1)];
static int n_devs, gpu_of[MAX_GPUS], n_gpus, init_error, cuda, initialized;
static char driver[80];
static struct { char call[64]; int device, code; } fails[MAX_FAILS];
static int n_fails;

static const char *field(const char *line, const char *key, char *out, size_t size) {
    char pat[40];
    snprintf(pat, sizeof pat, "\t%s=", key);
    const char *at = strstr(line, pat);
    if (!at) return NULL;
    at += strlen(pat);
    size_t n = strcspn(at, "\t\n");
    if (n >= size) n = size - 1;
    memcpy(out, at, n);
    out[n] = 0;
    return out;
}

static long long number(const char *line, const char *key, long long dflt) {
    char buf[40];
    return field(line, key, buf, sizeof buf) ? atoll(buf) : dflt;
}

static int load(void) {
    const char *path = getenv("FAKE_NVML_DESCRIPTION");
    n_devs = n_gpus = n_fails = init_error = cuda = 0;
    driver[0] = 0;
    if (!path) return NVML_ERROR_UNKNOWN;
    FILE *f = fopen(path, "r");
    if (!f) return NVML_ERROR_UNKNOWN;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        char word[16] = {0};
        sscanf(line, "%15s", word);
        if (!strcmp(word, "init_error")) init_error = atoi(line + 11);
        else if (!strcmp(word, "driver")) { sscanf(line + 7, "%79s", driver); }
        else if (!strcmp(word, "cuda")) cuda = atoi(line + 5);
        else if ((!strcmp(word, "gpu") && n_gpus < MAX_GPUS) || !strcmp(word, "mig")) {
            device *d = &devs[n_devs];
            memset(d, 0, sizeof *d);
            field(line, "name", d->name, sizeof d->name);
            field(line, "uuid", d->uuid, sizeof d->uuid);
            d->total = (unsigned long long)number(line, "total", 0);
            d->free = (unsigned long long)number(line, "free", 0);
            if (word[0] == 'g') {
                d->major = (int)number(line, "major", 0);
                d->minor = (int)number(line, "minor", 0);
                d->mig_mode = (int)number(line, "mig", -1);
                d->mig_capable = d->mig_mode >= 0;
                d->parent = -1;
                gpu_of[n_gpus++] = n_devs++;
            } else if (n_gpus && devs[gpu_of[n_gpus - 1]].n_mig < MAX_MIG) {
                device *p = &devs[gpu_of[n_gpus - 1]];
                d->is_mig = 1;
                d->parent = n_gpus - 1;
                d->major = p->major;
                d->minor = p->minor;
                p->mig[p->n_mig++] = n_devs++;
            }
        } else if (!strcmp(word, "proc") && n_gpus) {
            device *g = &devs[gpu_of[n_gpus - 1]];
            if (g->n_procs < MAX_PROCS) {
                g->pids[g->n_procs] = (unsigned int)number(line, "pid", 0);
                g->used[g->n_procs++] = (unsigned long long)number(line, "used", 0);
            }
        } else if (!strcmp(word, "fail") && n_fails < MAX_FAILS) {
            field(line, "call", fails[n_fails].call, sizeof fails[n_fails].call);
            fails[n_fails].device = (int)number(line, "device", -1);
            fails[n_fails].code = (int)number(line, "code", NVML_ERROR_UNKNOWN);
            n_fails++;
        }
    }
    fclose(f);
    return NVML_SUCCESS;
}

static int gpu_index(const device *d) {
    if (d->is_mig) return d->parent;
    for (int i = 0; i < n_gpus; i++) if (&devs[gpu_of[i]] == d) return i;
    return -1;
}

/* A failure the description asks for: for this call, on this GPU (or every GPU: device=-1). */
static int failing(const char *call, const device *d) {
    int index = d ? gpu_index(d) : -1;
    for (int i = 0; i < n_fails; i++)
        if (!strcmp(fails[i].call, call) && (fails[i].device == -1 || fails[i].device == index)) return fails[i].code;
    return 0;
}

static int valid(const device *d) {
    return d >= devs && d < devs + n_devs;
}

#define CHECK(call, dev) do { if (!initialized) return NVML_ERROR_UNINITIALIZED; \
    if ((dev) && !valid(dev)) return NVML_ERROR_INVALID_ARGUMENT; \
    int code_ = failing(call, dev); if (code_) return code_; } while (0)

static int copy(char *out, unsigned int size, const char *text) {
    if (!out) return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(text) + 1 > size) return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(out, text);
    return NVML_SUCCESS;
}

int nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    int code = load();
    if (code) return code;
    if (init_error) return init_error;
    initialized = 1;
    return NVML_SUCCESS;
}
int nvmlInit_v2(void) { return nvmlInitWithFlags(0); }
int nvmlInit(void) { return nvmlInitWithFlags(0); }
int nvmlShutdown(void) { if (!initialized) return NVML_ERROR_UNINITIALIZED; initialized = 0; return NVML_SUCCESS; }

const char *nvmlErrorString(int result) {
    switch (result) {
    case 0: return "Success";
    case 1: return "Uninitialized";
    case 2: return "Invalid Argument";
    case 3: return "Not Supported";
    case 4: return "Insufficient Permissions";
    case 6: return "Not Found";
    case 7: return "Insufficient Size";
    case 9: return "Driver Not Loaded";
    case 13: return "Function Not Found";
    case 15: return "GPU is lost";
    case 16: return "GPU requires restart";
    case 18: return "RM has detected an NVML/RM version mismatch.";
    default: return "Unknown Error";
    }
}

int nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    CHECK("nvmlSystemGetDriverVersion", (device *)0);
    return copy(version, length, driver);
}
int nvmlSystemGetCudaDriverVersion(int *version) {
    CHECK("nvmlSystemGetCudaDriverVersion", (device *)0);
    *version = cuda;
    return NVML_SUCCESS;
}
int nvmlSystemGetCudaDriverVersion_v2(int *version) {
    CHECK("nvmlSystemGetCudaDriverVersion_v2", (device *)0);
    *version = cuda;
    return NVML_SUCCESS;
}
int nvmlDeviceGetCount_v2(unsigned int *count) {
    CHECK("nvmlDeviceGetCount_v2", (device *)0);
    *count = (unsigned int)n_gpus;
    return NVML_SUCCESS;
}
int nvmlDeviceGetCount(unsigned int *count) { return nvmlDeviceGetCount_v2(count); }
int nvmlDeviceGetHandleByIndex_v2(unsigned int index, device **handle) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (index >= (unsigned int)n_gpus) return NVML_ERROR_INVALID_ARGUMENT;
    int code = failing("nvmlDeviceGetHandleByIndex_v2", &devs[gpu_of[index]]);
    if (code) return code;
    *handle = &devs[gpu_of[index]];
    return NVML_SUCCESS;
}
int nvmlDeviceGetHandleByIndex(unsigned int index, device **handle) { return nvmlDeviceGetHandleByIndex_v2(index, handle); }
int nvmlDeviceGetName(device *d, char *name, unsigned int length) {
    CHECK("nvmlDeviceGetName", d);
    return copy(name, length, d->name);
}
int nvmlDeviceGetUUID(device *d, char *uuid, unsigned int length) {
    CHECK("nvmlDeviceGetUUID", d);
    return copy(uuid, length, d->uuid);
}
int nvmlDeviceGetMemoryInfo(device *d, nvmlMemory_t *memory) {
    CHECK("nvmlDeviceGetMemoryInfo", d);
    memory->total = d->total;
    memory->free = d->free;
    memory->used = d->total - d->free;
    return NVML_SUCCESS;
}
int nvmlDeviceGetMemoryInfo_v2(device *d, nvmlMemory_v2_t *memory) {
    CHECK("nvmlDeviceGetMemoryInfo_v2", d);
    memory->total = d->total;
    memory->reserved = 0;
    memory->free = d->free;
    memory->used = d->total - d->free;
    return NVML_SUCCESS;
}
int nvmlDeviceGetCudaComputeCapability(device *d, int *major, int *minor) {
    CHECK("nvmlDeviceGetCudaComputeCapability", d);
    *major = d->major;
    *minor = d->minor;
    return NVML_SUCCESS;
}
int nvmlDeviceGetMigMode(device *d, unsigned int *current, unsigned int *pending) {
    CHECK("nvmlDeviceGetMigMode", d);
    if (d->is_mig || !d->mig_capable) return NVML_ERROR_NOT_SUPPORTED;
    *current = *pending = (unsigned int)d->mig_mode;
    return NVML_SUCCESS;
}
int nvmlDeviceGetMaxMigDeviceCount(device *d, unsigned int *count) {
    CHECK("nvmlDeviceGetMaxMigDeviceCount", d);
    if (d->is_mig || !d->mig_capable) return NVML_ERROR_NOT_SUPPORTED;
    *count = MAX_MIG;
    return NVML_SUCCESS;
}
int nvmlDeviceGetMigDeviceHandleByIndex(device *d, unsigned int index, device **handle) {
    CHECK("nvmlDeviceGetMigDeviceHandleByIndex", d);
    if (d->is_mig || !d->mig_capable || d->mig_mode != 1) return NVML_ERROR_NOT_SUPPORTED;
    if (index >= MAX_MIG) return NVML_ERROR_INVALID_ARGUMENT;
    if (index >= (unsigned int)d->n_mig) return NVML_ERROR_NOT_FOUND;
    *handle = &devs[d->mig[index]];
    return NVML_SUCCESS;
}
int nvmlDeviceIsMigDeviceHandle(device *d, unsigned int *is_mig) {
    CHECK("nvmlDeviceIsMigDeviceHandle", d);
    *is_mig = (unsigned int)d->is_mig;
    return NVML_SUCCESS;
}

/* As the driver: with too small a buffer (or none) the count needed and INSUFFICIENT_SIZE; with no
 * process, SUCCESS and a count of 0. */
static int processes(const char *call, device *d, unsigned int *count, nvmlProcessInfo_t *infos) {
    CHECK(call, d);
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    if (d->is_mig) return NVML_ERROR_NOT_SUPPORTED;
    unsigned int room = *count;
    *count = (unsigned int)d->n_procs;
    if (!d->n_procs) return NVML_SUCCESS;
    if (!infos || room < (unsigned int)d->n_procs) return NVML_ERROR_INSUFFICIENT_SIZE;
    for (int i = 0; i < d->n_procs; i++) {
        infos[i].pid = d->pids[i];
        infos[i].usedGpuMemory = d->used[i];
        infos[i].gpuInstanceId = infos[i].computeInstanceId = 0xFFFFFFFF;
    }
    return NVML_SUCCESS;
}
int nvmlDeviceGetComputeRunningProcesses_v3(device *d, unsigned int *count, nvmlProcessInfo_t *infos) {
    return processes("nvmlDeviceGetComputeRunningProcesses_v3", d, count, infos);
}
int nvmlDeviceGetComputeRunningProcesses_v2(device *d, unsigned int *count, nvmlProcessInfo_t *infos) {
    return processes("nvmlDeviceGetComputeRunningProcesses_v2", d, count, infos);
}
