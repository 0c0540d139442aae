package org.libchat;

/**
 * Progress of an upload or a download, called on the thread that runs the transfer. Throwing
 * aborts the transfer: the call then throws that exception, and calling again with the same
 * file resumes where the server (upload) or the ".part" file (download) stands.
 */
@FunctionalInterface
public interface ProgressListener {
    void onProgress(long done, long total);
}
