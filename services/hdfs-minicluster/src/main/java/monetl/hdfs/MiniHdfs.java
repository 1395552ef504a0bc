package monetl.hdfs;

import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hdfs.HdfsConfiguration;
import org.apache.hadoop.hdfs.MiniDFSCluster;

/**
 * A real single-datanode HDFS on 127.0.0.1 with fixed namenode RPC and HTTP (WebHDFS) ports.
 *
 * Usage: MiniHdfs BASE_DIR NAMENODE_PORT HTTP_PORT
 *
 * The file system survives restarts: BASE_DIR is formatted only the first time (marker file
 * ".formatted"). Prints a line starting with "MONETL-HDFS-READY" once the datanode has registered,
 * then runs until killed; a shutdown hook stops the cluster cleanly on SIGTERM.
 */
public final class MiniHdfs {
    private MiniHdfs() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: MiniHdfs BASE_DIR NAMENODE_PORT HTTP_PORT");
            System.exit(2);
        }
        File baseDir = new File(args[0]).getAbsoluteFile();
        int rpcPort = Integer.parseInt(args[1]);
        int httpPort = Integer.parseInt(args[2]);
        Path formatted = baseDir.toPath().resolve(".formatted");
        boolean format = !Files.exists(formatted);

        Configuration conf = new HdfsConfiguration();
        conf.set(MiniDFSCluster.HDFS_MINIDFS_BASEDIR, baseDir.getPath());
        conf.setBoolean("dfs.webhdfs.enabled", true);
        // Local dev/test stack: any WebHDFS user (user.name=...) may write anywhere.
        conf.setBoolean("dfs.permissions.enabled", false);
        conf.setInt("dfs.replication", 1);
        // WebHDFS redirects reads/writes to the datanode's HTTP address: it must be loopback.
        conf.set("dfs.datanode.hostname", "127.0.0.1");
        conf.set("dfs.datanode.address", "127.0.0.1:0");
        conf.set("dfs.datanode.http.address", "127.0.0.1:0");
        conf.set("dfs.datanode.ipc.address", "127.0.0.1:0");
        conf.set("dfs.namenode.http-address", "127.0.0.1:" + httpPort);
        // Small test data: do not stop writes because the developer disk is nearly full.
        conf.setLong("dfs.datanode.du.reserved", 0L);
        conf.setLong("dfs.namenode.resource.du.reserved", 0L);

        MiniDFSCluster cluster = new MiniDFSCluster.Builder(conf, baseDir)
                .nameNodePort(rpcPort)
                .nameNodeHttpPort(httpPort)
                .numDataNodes(1)
                .format(format)
                .manageNameDfsDirs(true)
                .manageDataDfsDirs(true)
                .checkDataNodeHostConfig(true)
                .build();
        cluster.waitActive();
        if (format) {
            Files.createFile(formatted);
        }

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            cluster.shutdown();
            stopped.countDown();
        }, "monetl-hdfs-shutdown"));
        System.out.println("MONETL-HDFS-READY hdfs://127.0.0.1:" + rpcPort
                + " webhdfs=http://127.0.0.1:" + httpPort + " formatted=" + format);
        System.out.flush();
        stopped.await();
    }
}
