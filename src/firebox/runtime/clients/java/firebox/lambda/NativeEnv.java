package firebox.lambda;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.Map;

/**
 * Gives a JVM started before its function was known the function's environment.
 *
 * <p>Java cannot change its own environment: System.getenv() is read from the C environment
 * once, and child processes inherit the C environment. A pooled environment's JVM is
 * therefore started with room to spare: many empty variables (the pointer slots) and one
 * long one (the string space). Once the function's variables arrive, they are written over
 * that block in place, through /proc/self/mem (a process may always write its own memory):
 * the strings into the space [env_start, env_end) that /proc/self/stat reports, the pointers
 * into the initial envp array that follows argv at the start of the stack. This must happen
 * before anything calls System.getenv(), which is why the configuration's file descriptor
 * arrives as a system property.
 */
final class NativeEnv {
    private NativeEnv() {}

    /** Read the environment block's layout and check it, writing nothing: run while a
     * pooled JVM waits, it takes the first use of this code off the cold path. */
    static int slots() throws IOException {
        String stat = new String(Files.readAllBytes(Paths.get("/proc/self/stat")), StandardCharsets.US_ASCII);
        String[] f = stat.substring(stat.lastIndexOf(')') + 2).trim().split(" ");
        try (RandomAccessFile mem = new RandomAccessFile("/proc/self/mem", "r")) {
            long startStack = Long.parseLong(f[28 - 3]);
            long envp = startStack + 8 * (word(mem, startStack) + 2);
            int slots = 0;
            while (word(mem, envp + 8L * slots) != 0) {
                slots++;
            }
            return slots;
        }
    }

    /** Replace the process's environment with ``env``. IOException if it does not fit or
     * the stack is not laid out as expected (nothing is written then). */
    static void replace(Map<String, String> env) throws IOException {
        String stat = new String(Files.readAllBytes(Paths.get("/proc/self/stat")), StandardCharsets.US_ASCII);
        String[] f = stat.substring(stat.lastIndexOf(')') + 2).trim().split(" ");
        // Fields are numbered from 1 and the array starts at field 3 (state).
        long startStack = Long.parseLong(f[28 - 3]);
        long envStart = Long.parseLong(f[50 - 3]);
        long envEnd = Long.parseLong(f[51 - 3]);
        ByteArrayOutputStream strings = new ByteArrayOutputStream();
        long[] pointers = new long[env.size()];
        int i = 0;
        for (Map.Entry<String, String> e : env.entrySet()) {
            pointers[i++] = envStart + strings.size();
            byte[] entry = (e.getKey() + "=" + e.getValue()).getBytes(StandardCharsets.UTF_8);
            strings.write(entry, 0, entry.length);
            strings.write(0);
        }
        if (strings.size() > envEnd - envStart) {
            throw new IOException("the function's environment (" + strings.size()
                    + " bytes) does not fit the " + (envEnd - envStart) + " reserved");
        }
        try (RandomAccessFile mem = new RandomAccessFile("/proc/self/mem", "rw")) {
            long argc = word(mem, startStack);
            long envp = startStack + 8 * (argc + 2);
            if (argc <= 0 || argc > 4096 || word(mem, envp - 8) != 0) {
                throw new IOException("unexpected initial stack layout");
            }
            int slots = 0;
            while (true) {
                long p = word(mem, envp + 8L * slots);
                if (p == 0) {
                    break;
                }
                if (p < envStart || p >= envEnd) {
                    throw new IOException("environment pointer outside the environment block");
                }
                slots++;
            }
            if (pointers.length > slots) {
                throw new IOException("the function has " + pointers.length
                        + " environment variables; room for " + slots);
            }
            byte[] block = new byte[(int) (envEnd - envStart)];
            byte[] s = strings.toByteArray();
            System.arraycopy(s, 0, block, 0, s.length);
            ByteBuffer ptrs = ByteBuffer.allocate(8 * (pointers.length + 1)).order(ByteOrder.nativeOrder());
            for (long p : pointers) {
                ptrs.putLong(p);
            }
            ptrs.putLong(0);
            mem.seek(envStart);
            mem.write(block);
            mem.seek(envp);
            mem.write(ptrs.array());
        }
    }

    private static long word(RandomAccessFile mem, long address) throws IOException {
        byte[] b = new byte[8];
        mem.seek(address);
        mem.readFully(b);
        return ByteBuffer.wrap(b).order(ByteOrder.nativeOrder()).getLong();
    }
}
